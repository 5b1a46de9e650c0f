#include "libbpf_log.h"

#include <bpf/libbpf.h>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <mutex>

namespace mimd {

namespace {

thread_local LogCapture* current_capture = nullptr;

struct LogMessage {
  std::string level;
  std::string text;
};

// One logger per process: libbpf's print hook is process-global too.
std::mutex logger_mutex;
std::unique_ptr<Napi::ThreadSafeFunction> logger;

const char* LevelName(enum libbpf_print_level level) {
  switch (level) {
    case LIBBPF_WARN: return "warn";
    case LIBBPF_INFO: return "info";
    default: return "debug";
  }
}

void CallLogger(Napi::Env env, Napi::Function fn, LogMessage* message) {
  if (env != nullptr && fn != nullptr) {
    fn.Call({Napi::String::New(env, message->level), Napi::String::New(env, message->text)});
  }
  delete message;
}

int Print(enum libbpf_print_level level, const char* format, va_list args) {
  char buf[4096];
  int n = vsnprintf(buf, sizeof(buf), format, args);
  if (n < 0) return n;
  std::string text(buf);

  if (current_capture != nullptr && level == LIBBPF_WARN) current_capture->Append(text);

  std::lock_guard<std::mutex> lock(logger_mutex);
  if (logger) {
    auto* message = new LogMessage{LevelName(level), text};
    if (logger->NonBlockingCall(message, CallLogger) != napi_ok) delete message;
  } else if (level != LIBBPF_DEBUG) {
    fputs(text.c_str(), stderr);
  }
  return n;
}

void ReleaseLogger() {
  std::lock_guard<std::mutex> lock(logger_mutex);
  if (logger) {
    logger->Release();
    logger.reset();
  }
}

Napi::Value SetLogger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReleaseLogger();
  if (info.Length() > 0 && info[0].IsFunction()) {
    auto tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "libbpf-log", 0, 1);
    // The logger must never keep the process alive on its own.
    tsfn.Unref(env);
    std::lock_guard<std::mutex> lock(logger_mutex);
    logger = std::make_unique<Napi::ThreadSafeFunction>(tsfn);
  } else if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) {
    throw Napi::TypeError::New(env, "logger: expected a function or null");
  }
  return env.Undefined();
}

}  // namespace

LogCapture::LogCapture() : previous_(current_capture) { current_capture = this; }
LogCapture::~LogCapture() { current_capture = previous_; }

void InitLibbpfLog(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(Print);
  exports.Set("setLogger", Napi::Function::New(env, SetLogger, "setLogger"));
  env.AddCleanupHook([]() { ReleaseLogger(); });
}

}  // namespace mimd
