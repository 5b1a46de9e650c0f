// Small fd helpers shared by the object classes.
#pragma once
#include <napi.h>
#include <string>

namespace mimd {

// F_DUPFD_CLOEXEC: every fd the addon hands out is close-on-exec and owned once.
// Returns a negative errno on failure.
int DupCloexec(int fd);

// Throws (JS Error) on failure.
int DupCloexecOrThrow(Napi::Env env, int fd);

// What kind of bpf object an fd refers to: "bpf-map", "bpf-prog", "bpf_link", ...
// (the anon inode name), or "" when it is not a bpf object.
std::string BpfFdKind(int fd);

// Reads an optional uint32 property / argument with a named TypeError.
uint32_t GetUint32(Napi::Env env, const Napi::Value& value, const char* field);
std::string GetString(Napi::Env env, const Napi::Value& value, const char* field);
Napi::Buffer<uint8_t> GetBuffer(Napi::Env env, const Napi::Value& value, const char* field);

}  // namespace mimd
