// libbpf's print callback: routed to a JS logger (from any thread) and, while a
// LogCapture is alive on the calling thread, also kept for the error message of
// the operation in progress (libbpf explains *why* a load or attach failed only
// in its log).
#pragma once
#include <napi.h>
#include <string>

namespace mimd {

void InitLibbpfLog(Napi::Env env, Napi::Object exports);

class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  // libbpf's warnings seen since construction, one per line.
  const std::string& warnings() const { return warnings_; }
  void Append(const std::string& line) { warnings_ += line; }

 private:
  std::string warnings_;
  LogCapture* previous_;
};

}  // namespace mimd
