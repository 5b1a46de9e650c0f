#include "fd.h"

#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <unistd.h>

#include "errors.h"

namespace mimd {

int DupCloexec(int fd) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return copy < 0 ? -errno : copy;
}

int DupCloexecOrThrow(Napi::Env env, int fd) {
  int copy = DupCloexec(fd);
  if (copy < 0) ThrowErrno(env, -copy, "fcntl(F_DUPFD_CLOEXEC)");
  return copy;
}

std::string BpfFdKind(int fd) {
  char link[64];
  char target[PATH_MAX];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  if (n < 0) return "";
  target[n] = '\0';
  std::string name(target);
  const std::string prefix = "anon_inode:";
  if (name.rfind(prefix, 0) != 0) return "";
  return name.substr(prefix.size());
}

uint32_t GetUint32(Napi::Env env, const Napi::Value& value, const char* field) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string(field) + ": expected a number");
  double d = value.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::TypeError::New(env, std::string(field) + ": expected an integer from 0 to 4294967295");
  }
  return static_cast<uint32_t>(d);
}

std::string GetString(Napi::Env env, const Napi::Value& value, const char* field) {
  if (!value.IsString()) throw Napi::TypeError::New(env, std::string(field) + ": expected a string");
  return value.As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> GetBuffer(Napi::Env env, const Napi::Value& value, const char* field) {
  if (!value.IsBuffer()) throw Napi::TypeError::New(env, std::string(field) + ": expected a Buffer");
  return value.As<Napi::Buffer<uint8_t>>();
}

}  // namespace mimd
