// Errors from the kernel and libbpf as JS Errors with code, errno and syscall
// (one helper, as node_netlink's ErrnoException), so callers can branch on
// err.code and logs say which call failed.
#pragma once
#include <napi.h>
#include <string>

namespace mimd {

// A failure recorded off the JS thread, turned into a JS Error on it.
struct Failure {
  int err = 0;              // positive errno or libbpf error (4000+)
  std::string syscall;      // the libbpf/syscall wrapper that failed
  std::string detail;       // extra context (libbpf's messages, names)
  std::string verifierLog;  // set when a program failed verification

  bool failed() const { return err != 0; }
};

// "EINVAL", "ENOTSUPP" for 524, "LIBBPF_ERRNO__VERIFY" for libbpf's own codes.
std::string ErrnoName(int err);
std::string ErrnoText(int err);

Napi::Error MakeError(Napi::Env env, const Failure& failure);
Napi::Error MakeError(Napi::Env env, int err, const std::string& syscall, const std::string& detail = "");

// Throws a JS Error for a libbpf/syscall return value (negative errno) or errno.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail = "");

// libbpf 1.x returns -errno; some raw wrappers return -1 and set errno.
inline int ErrFromRet(int ret) { return ret < -1 ? -ret : errno; }

}  // namespace mimd
