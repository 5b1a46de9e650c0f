// NativeProgram: one owned fd on a program loaded from raw instructions (the
// kernel feature probes' throwaway programs). Knows nothing of what they probe:
// load, test run, link create, raw tracepoint open, close.
#pragma once
#include <napi.h>

namespace mimd {

class BpfProgram : public Napi::ObjectWrap<BpfProgram> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);

  explicit BpfProgram(const Napi::CallbackInfo& info);
  ~BpfProgram() override;

 private:
  static Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value TestRun(const Napi::CallbackInfo& info);
  Napi::Value LinkCreate(const Napi::CallbackInfo& info);
  Napi::Value RawTracepointOpen(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  int OpenFd(Napi::Env env) const;

  int fd_ = -1;
};

}  // namespace mimd
