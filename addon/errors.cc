#include "errors.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstring>

namespace mimd {

namespace {

// Kernel-internal errnos that glibc cannot name but the bpf syscall returns.
const char* KernelInternalName(int err) {
  switch (err) {
    case 512: return "ERESTARTSYS";
    case 524: return "ENOTSUPP";
    case 525: return "ETOOSMALL";
    case 526: return "ESERVERFAULT";
    case 527: return "EBADTYPE";
    default: return nullptr;
  }
}

const char* LibbpfName(int err) {
  switch (err) {
    case LIBBPF_ERRNO__LIBELF: return "LIBBPF_ERRNO__LIBELF";
    case LIBBPF_ERRNO__FORMAT: return "LIBBPF_ERRNO__FORMAT";
    case LIBBPF_ERRNO__KVERSION: return "LIBBPF_ERRNO__KVERSION";
    case LIBBPF_ERRNO__ENDIAN: return "LIBBPF_ERRNO__ENDIAN";
    case LIBBPF_ERRNO__INTERNAL: return "LIBBPF_ERRNO__INTERNAL";
    case LIBBPF_ERRNO__RELOC: return "LIBBPF_ERRNO__RELOC";
    case LIBBPF_ERRNO__LOAD: return "LIBBPF_ERRNO__LOAD";
    case LIBBPF_ERRNO__VERIFY: return "LIBBPF_ERRNO__VERIFY";
    case LIBBPF_ERRNO__PROG2BIG: return "LIBBPF_ERRNO__PROG2BIG";
    case LIBBPF_ERRNO__KVER: return "LIBBPF_ERRNO__KVER";
    case LIBBPF_ERRNO__PROGTYPE: return "LIBBPF_ERRNO__PROGTYPE";
    case LIBBPF_ERRNO__WRNGPID: return "LIBBPF_ERRNO__WRNGPID";
    case LIBBPF_ERRNO__INVSEQ: return "LIBBPF_ERRNO__INVSEQ";
    case LIBBPF_ERRNO__NLPARSE: return "LIBBPF_ERRNO__NLPARSE";
    default: return nullptr;
  }
}

}  // namespace

std::string ErrnoName(int err) {
  if (const char* name = KernelInternalName(err)) return name;
  if (const char* name = LibbpfName(err)) return name;
  if (const char* name = strerrorname_np(err)) return name;
  return "E" + std::to_string(err);
}

std::string ErrnoText(int err) {
  if (err == 524) return "Operation not supported by the kernel for this map or program";
  if (err >= __LIBBPF_ERRNO__START) {
    char buf[256];
    libbpf_strerror(err, buf, sizeof(buf));
    return buf;
  }
  return strerror(err);
}

Napi::Error MakeError(Napi::Env env, const Failure& failure) {
  std::string message = failure.syscall + ": " + ErrnoText(failure.err) + " (" + ErrnoName(failure.err) + ")";
  if (!failure.detail.empty()) message += ": " + failure.detail;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, ErrnoName(failure.err)));
  error.Set("errno", Napi::Number::New(env, failure.err));
  error.Set("syscall", Napi::String::New(env, failure.syscall));
  if (!failure.verifierLog.empty()) error.Set("verifierLog", Napi::String::New(env, failure.verifierLog));
  return error;
}

Napi::Error MakeError(Napi::Env env, int err, const std::string& syscall, const std::string& detail) {
  Failure failure;
  failure.err = err;
  failure.syscall = syscall;
  failure.detail = detail;
  return MakeError(env, failure);
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail) {
  throw MakeError(env, err, syscall, detail);
}

}  // namespace mimd
