// NativeMap: one owned fd on a kernel BPF map. Knows nothing of slots or
// versions: create, open a pin, fd from id, element and batch operations.
#pragma once
#include <napi.h>

#include <cstdint>

namespace mimd {

class BpfMap : public Napi::ObjectWrap<BpfMap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // A JS NativeMap that takes ownership of fd (closed on failure).
  static Napi::Object Adopt(Napi::Env env, int fd);

  explicit BpfMap(const Napi::CallbackInfo& info);
  ~BpfMap() override;

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  static Napi::Value CreateSync(const Napi::CallbackInfo& info);
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  static Napi::Value FromId(const Napi::CallbackInfo& info);

  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value UpdateSync(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value NextKey(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatchSync(const Napi::CallbackInfo& info);
  Napi::Value LookupBatch(const Napi::CallbackInfo& info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info);
  Napi::Value Freeze(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // Throws when closed: use after close is a bug in the caller.
  int OpenFd(Napi::Env env) const;
  void CheckKey(Napi::Env env, const Napi::Buffer<uint8_t>& key, const char* field) const;

  // The arguments of update (key, value, flags) and of a batch update (keys,
  // values, count, flags), checked against the map's sizes.
  struct UpdateArgs {
    int fd;
    Napi::Buffer<uint8_t> key, value;
    uint32_t flags;
  };
  struct BatchArgs {
    int fd;
    Napi::Buffer<uint8_t> keys, values;
    uint32_t count, flags;
  };
  UpdateArgs ReadUpdateArgs(const Napi::CallbackInfo& info) const;
  BatchArgs ReadBatchArgs(const Napi::CallbackInfo& info) const;

  int fd_ = -1;
  uint32_t type_ = 0;
  uint32_t key_size_ = 0;
  uint32_t value_size_ = 0;
  // bytes of one value in user space (per-CPU maps: rounded to 8, times possible CPUs)
  uint32_t user_value_size_ = 0;
};

}  // namespace mimd
