// Who is on the other end of a unix socket (SO_PEERCRED): the API's socket
// listener records the peer's uid in audit records. Node has no API for it.
#pragma once
#include <napi.h>

namespace mimd {

// peerCredentials(fd) -> { pid, uid, gid }
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

}  // namespace mimd
