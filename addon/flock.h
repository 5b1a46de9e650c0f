// An exclusive lock that dies with its process (flock(2) on an fd kept open),
// for "one mimd owns this state directory and pin root". Node has no flock.
#pragma once
#include <napi.h>

namespace mimd {

// lockExclusive(path, create) -> fd. Opens `path` (a directory, or a file
// made mode 0600 when `create`) with O_CLOEXEC and takes LOCK_EX|LOCK_NB on
// it. Throws EWOULDBLOCK (code "EAGAIN") when another open file holds it.
// The lock lasts until the fd is closed, or the process ends.
Napi::Value LockExclusive(const Napi::CallbackInfo& info);

}  // namespace mimd
