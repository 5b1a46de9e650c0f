#include "flock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"
#include "fd.h"

namespace mimd {

Napi::Value LockExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = GetString(env, info[0], "path");
  bool create = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  // A directory (bpffs holds no regular files) is opened read-only; flock
  // needs no write access to the file it locks.
  int fd = create ? open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600) : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "open", path);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "flock", path);
  }
  return Napi::Number::New(env, fd);
}

}  // namespace mimd
