// BpfLink: an owned fd on a kernel bpf_link (an attachment). Closing the last fd
// of an unpinned link detaches the program; a pinned link survives its owner.
import { native, type NativeLink, type NativeLinkInfo } from './native';
import { assertNonEmptyString } from './check';

export class BpfLink {
  private constructor(private readonly handle: NativeLink) {}

  /** Wraps a native handle this object now owns. */
  static adopt(handle: NativeLink): BpfLink {
    return new BpfLink(handle);
  }

  static openPinned(path: string): BpfLink {
    assertNonEmptyString('path', path);
    return new BpfLink(native.NativeLink.openPinned(path));
  }

  get fd(): number {
    return this.handle.fd;
  }

  get closed(): boolean {
    return this.handle.closed;
  }

  info(): NativeLinkInfo {
    return this.handle.info();
  }

  pin(path: string): void {
    assertNonEmptyString('path', path);
    this.handle.pin(path);
  }

  /**
   * Detaches the program now, even if the link is pinned or has other fds
   * (BPF_LINK_DETACH). The handle stays open (a detached link) until close().
   */
  detach(): void {
    this.handle.detach();
  }

  /** Idempotent. */
  close(): void {
    this.handle.close();
  }
}
