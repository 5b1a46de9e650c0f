// NativeLink: one owned fd on a kernel bpf_link (an attachment of a program).
#pragma once
#include <napi.h>

namespace mimd {

class BpfLink : public Napi::ObjectWrap<BpfLink> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // A JS NativeLink that takes ownership of fd (closed on failure).
  static Napi::Object Adopt(Napi::Env env, int fd);

  explicit BpfLink(const Napi::CallbackInfo& info);
  ~BpfLink() override;

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  int OpenFd(Napi::Env env) const;

  int fd_ = -1;
};

}  // namespace mimd
