#include "bpf_map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "fd.h"
#include "worker.h"

namespace mimd {

namespace {

// Marks a construction from C++ (Adopt); JS cannot call `new NativeMap()`.
int adopt_token;

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

int MapInfoByFd(int fd, bpf_map_info* info) {
  *info = {};
  __u32 len = sizeof(*info);
  int ret = bpf_obj_get_info_by_fd(fd, info, &len);
  return ret < 0 ? ErrFromRet(ret) : 0;
}

// ---- workers -------------------------------------------------------------

class CreateWorker : public PromiseWorker {
 public:
  CreateWorker(Napi::Env env, uint32_t type, std::string name, uint32_t key_size, uint32_t value_size,
               uint32_t max_entries, uint32_t flags, int inner_fd, int btf_fd, uint32_t btf_key_type_id,
               uint32_t btf_value_type_id)
      : PromiseWorker(env, "mimd:map_create"),
        type_(type), name_(std::move(name)), key_size_(key_size), value_size_(value_size),
        max_entries_(max_entries), flags_(flags), inner_fd_(env, inner_fd), btf_fd_(env, btf_fd),
        btf_key_type_id_(btf_key_type_id), btf_value_type_id_(btf_value_type_id) {}

  ~CreateWorker() override {
    if (fd_ >= 0) close(fd_);  // only when the promise never took it
  }

  void Execute() override {
    LIBBPF_OPTS(bpf_map_create_opts, opts);
    opts.map_flags = flags_;
    if (inner_fd_.get() >= 0) opts.inner_map_fd = inner_fd_.get();
    if (btf_fd_.get() >= 0) {
      opts.btf_fd = btf_fd_.get();
      opts.btf_key_type_id = btf_key_type_id_;
      opts.btf_value_type_id = btf_value_type_id_;
    }
    int fd = bpf_map_create(static_cast<bpf_map_type>(type_), name_.empty() ? nullptr : name_.c_str(), key_size_,
                            value_size_, max_entries_, &opts);
    if (fd < 0) {
      Fail(ErrFromRet(fd), "bpf_map_create",
           "type " + std::to_string(type_) + ", key " + std::to_string(key_size_) + " B, value " +
               std::to_string(value_size_) + " B, max_entries " + std::to_string(max_entries_) + ", flags 0x" +
               [](uint32_t f) { char b[16]; snprintf(b, sizeof b, "%x", f); return std::string(b); }(flags_));
      return;
    }
    fd_ = fd;
  }

  Napi::Value Result(Napi::Env env) override {
    int fd = fd_;
    fd_ = -1;
    return BpfMap::Adopt(env, fd);
  }

 private:
  uint32_t type_;
  std::string name_;
  uint32_t key_size_, value_size_, max_entries_, flags_;
  WorkerFd inner_fd_;
  WorkerFd btf_fd_;
  uint32_t btf_key_type_id_, btf_value_type_id_;
  int fd_ = -1;
};

class UpdateWorker : public PromiseWorker {
 public:
  UpdateWorker(Napi::Env env, int fd, Napi::Buffer<uint8_t> key, Napi::Buffer<uint8_t> value, uint64_t flags)
      : PromiseWorker(env, "mimd:map_update"), fd_(env, fd), key_(key), value_(value), flags_(flags) {}
  void Execute() override {
    int ret = bpf_map_update_elem(fd_.get(), key_.data(), value_.data(), flags_);
    if (ret < 0) Fail(ErrFromRet(ret), "bpf_map_update_elem");
  }

 private:
  WorkerFd fd_;
  HeldBuffer key_, value_;
  uint64_t flags_;
};

class DeleteWorker : public PromiseWorker {
 public:
  DeleteWorker(Napi::Env env, int fd, Napi::Buffer<uint8_t> key)
      : PromiseWorker(env, "mimd:map_delete"), fd_(env, fd), key_(key) {}
  void Execute() override {
    int ret = bpf_map_delete_elem(fd_.get(), key_.data());
    if (ret < 0) {
      int err = ErrFromRet(ret);
      if (err == ENOENT) return;  // resolves false
      Fail(err, "bpf_map_delete_elem");
      return;
    }
    deleted_ = true;
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Boolean::New(env, deleted_); }

 private:
  WorkerFd fd_;
  HeldBuffer key_;
  bool deleted_ = false;
};

class UpdateBatchWorker : public PromiseWorker {
 public:
  UpdateBatchWorker(Napi::Env env, int fd, Napi::Buffer<uint8_t> keys, Napi::Buffer<uint8_t> values, uint32_t count,
                    uint64_t flags)
      : PromiseWorker(env, "mimd:map_update_batch"), fd_(env, fd), keys_(keys), values_(values), count_(count),
        flags_(flags) {}
  void Execute() override {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    opts.elem_flags = flags_;
    __u32 count = count_;
    int ret = bpf_map_update_batch(fd_.get(), keys_.data(), values_.data(), &count, &opts);
    // The kernel writes the count back only from inside its element loop: a
    // batch refused as a whole (frozen map, no batch support) leaves it as
    // sent, and a failure can never have processed every element.
    processed_ = ret < 0 && count >= count_ ? 0 : count;
    if (ret < 0) Fail(ErrFromRet(ret), "bpf_map_update_batch", std::to_string(processed_) + " of " + std::to_string(count_) + " elements written");
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, processed_); }
  // The kernel stops at the first failing element: say how far it got.
  void Decorate(Napi::Error& error) override { error.Set("processed", Napi::Number::New(error.Env(), processed_)); }

 private:
  WorkerFd fd_;
  HeldBuffer keys_, values_;
  uint32_t count_;
  uint64_t flags_;
  uint32_t processed_ = 0;
};

class DeleteBatchWorker : public PromiseWorker {
 public:
  DeleteBatchWorker(Napi::Env env, int fd, Napi::Buffer<uint8_t> keys, uint32_t count)
      : PromiseWorker(env, "mimd:map_delete_batch"), fd_(env, fd), keys_(keys), count_(count) {}
  void Execute() override {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    __u32 count = count_;
    int ret = bpf_map_delete_batch(fd_.get(), keys_.data(), &count, &opts);
    processed_ = ret < 0 && count >= count_ ? 0 : count;  // as for updates
    if (ret < 0) Fail(ErrFromRet(ret), "bpf_map_delete_batch", std::to_string(processed_) + " of " + std::to_string(count_) + " elements deleted");
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, processed_); }
  void Decorate(Napi::Error& error) override { error.Set("processed", Napi::Number::New(error.Env(), processed_)); }

 private:
  WorkerFd fd_;
  HeldBuffer keys_;
  uint32_t count_;
  uint32_t processed_ = 0;
};

class LookupBatchWorker : public PromiseWorker {
 public:
  LookupBatchWorker(Napi::Env env, int fd, std::vector<uint8_t> cursor, bool has_cursor, uint32_t max_count,
                    uint32_t key_size, uint32_t value_size)
      : PromiseWorker(env, "mimd:map_lookup_batch"), fd_(env, fd), in_(std::move(cursor)), has_cursor_(has_cursor),
        max_count_(max_count), key_size_(key_size), value_size_(value_size) {}
  void Execute() override {
    // The batch token is a bucket number for hash maps and a key for arrays:
    // big enough for either.
    out_.assign(std::max<size_t>(key_size_, 8), 0);
    keys_.assign(static_cast<size_t>(max_count_) * key_size_, 0);
    values_.assign(static_cast<size_t>(max_count_) * value_size_, 0);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    __u32 count = max_count_;
    int ret = bpf_map_lookup_batch(fd_.get(), has_cursor_ ? in_.data() : nullptr, out_.data(), keys_.data(),
                                   values_.data(), &count, &opts);
    count_ = count;
    if (ret < 0) {
      int err = ErrFromRet(ret);
      if (err == ENOENT) {  // no more entries: what was read is the last page
        done_ = true;
        return;
      }
      Fail(err, "bpf_map_lookup_batch");
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys_.data(), static_cast<size_t>(count_) * key_size_));
    result.Set("values", Napi::Buffer<uint8_t>::Copy(env, values_.data(), static_cast<size_t>(count_) * value_size_));
    result.Set("count", Napi::Number::New(env, count_));
    if (done_) {
      result.Set("cursor", env.Null());
    } else {
      result.Set("cursor", Napi::Buffer<uint8_t>::Copy(env, out_.data(), out_.size()));
    }
    return result;
  }

 private:
  WorkerFd fd_;
  std::vector<uint8_t> in_, out_, keys_, values_;
  bool has_cursor_;
  uint32_t max_count_, key_size_, value_size_;
  uint32_t count_ = 0;
  bool done_ = false;
};

}  // namespace

// ---- class ---------------------------------------------------------------

void BpfMap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeMap",
      {
          StaticMethod<&BpfMap::Create>("create"),
          StaticMethod<&BpfMap::CreateSync>("createSync"),
          StaticMethod<&BpfMap::OpenPinned>("openPinned"),
          StaticMethod<&BpfMap::FromId>("fromId"),
          InstanceAccessor<&BpfMap::GetFd>("fd"),
          InstanceAccessor<&BpfMap::GetClosed>("closed"),
          InstanceMethod<&BpfMap::Info>("info"),
          InstanceMethod<&BpfMap::Lookup>("lookup"),
          InstanceMethod<&BpfMap::Update>("update"),
          InstanceMethod<&BpfMap::UpdateSync>("updateSync"),
          InstanceMethod<&BpfMap::Delete>("delete"),
          InstanceMethod<&BpfMap::NextKey>("nextKey"),
          InstanceMethod<&BpfMap::UpdateBatch>("updateBatch"),
          InstanceMethod<&BpfMap::UpdateBatchSync>("updateBatchSync"),
          InstanceMethod<&BpfMap::LookupBatch>("lookupBatch"),
          InstanceMethod<&BpfMap::DeleteBatch>("deleteBatch"),
          InstanceMethod<&BpfMap::Freeze>("freeze"),
          InstanceMethod<&BpfMap::Pin>("pin"),
          InstanceMethod<&BpfMap::Close>("close"),
      });
  GetAddonData(env)->mapConstructor = Napi::Persistent(ctor);
  exports.Set("NativeMap", ctor);
}

Napi::Object BpfMap::Adopt(Napi::Env env, int fd) {
  Napi::Number fd_value = Napi::Number::New(env, fd);
  try {
    return GetAddonData(env)->mapConstructor.New({Napi::External<int>::New(env, &adopt_token), fd_value});
  } catch (...) {
    close(fd);
    throw;
  }
}

BpfMap::BpfMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &adopt_token) {
    throw Napi::TypeError::New(env, "NativeMap: use NativeMap.create, NativeMap.openPinned or NativeMap.fromId");
  }
  int fd = info[1].As<Napi::Number>().Int32Value();
  bpf_map_info map_info;
  int err = MapInfoByFd(fd, &map_info);
  if (err) {
    close(fd);
    ThrowErrno(env, err, "bpf_obj_get_info_by_fd");
  }
  fd_ = fd;
  type_ = map_info.type;
  key_size_ = map_info.key_size;
  value_size_ = map_info.value_size;
  user_value_size_ = IsPerCpu(type_) ? ((value_size_ + 7) / 8) * 8 * libbpf_num_possible_cpus() : value_size_;
}

BpfMap::~BpfMap() {
  // Fallback only: owners call close(); a GC'd handle must not leak its fd.
  if (fd_ >= 0) close(fd_);
}

int BpfMap::OpenFd(Napi::Env env) const {
  if (fd_ < 0) throw Napi::Error::New(env, "NativeMap: used after close()");
  return fd_;
}

void BpfMap::CheckKey(Napi::Env env, const Napi::Buffer<uint8_t>& key, const char* field) const {
  if (key.Length() != key_size_) {
    throw Napi::TypeError::New(env, std::string(field) + ": expected " + std::to_string(key_size_) + " bytes, got " +
                                        std::to_string(key.Length()));
  }
}

namespace {

struct CreateSpec {
  uint32_t type = 0;
  std::string name;
  uint32_t key_size = 0, value_size = 0, max_entries = 0, flags = 0;
  int inner_fd = -1;
  // The type information of a template the map must match (an inner map):
  // some kernels compare what the kernel derives from it (6.1: timer_off).
  int btf_fd = -1;
  uint32_t btf_key_type_id = 0, btf_value_type_id = 0;
};

CreateSpec ReadCreateSpec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "spec: expected an object");
  Napi::Object spec = info[0].As<Napi::Object>();
  CreateSpec out;
  out.type = GetUint32(env, spec.Get("type"), "type");
  if (spec.Has("name") && !spec.Get("name").IsUndefined()) out.name = GetString(env, spec.Get("name"), "name");
  out.key_size = GetUint32(env, spec.Get("keySize"), "keySize");
  out.value_size = GetUint32(env, spec.Get("valueSize"), "valueSize");
  out.max_entries = GetUint32(env, spec.Get("maxEntries"), "maxEntries");
  if (spec.Has("flags") && !spec.Get("flags").IsUndefined()) out.flags = GetUint32(env, spec.Get("flags"), "flags");
  if (spec.Has("innerMapFd") && !spec.Get("innerMapFd").IsUndefined()) {
    out.inner_fd = static_cast<int>(GetUint32(env, spec.Get("innerMapFd"), "innerMapFd"));
  }
  if (spec.Has("btfFd") && !spec.Get("btfFd").IsUndefined()) {
    out.btf_fd = static_cast<int>(GetUint32(env, spec.Get("btfFd"), "btfFd"));
    out.btf_key_type_id = GetUint32(env, spec.Get("btfKeyTypeId"), "btfKeyTypeId");
    out.btf_value_type_id = GetUint32(env, spec.Get("btfValueTypeId"), "btfValueTypeId");
  }
  return out;
}

}  // namespace

Napi::Value BpfMap::Create(const Napi::CallbackInfo& info) {
  CreateSpec c = ReadCreateSpec(info);
  auto* worker = new CreateWorker(info.Env(), c.type, c.name, c.key_size, c.value_size, c.max_entries, c.flags, c.inner_fd,
                                  c.btf_fd, c.btf_key_type_id, c.btf_value_type_id);
  return worker->Start();
}

// Small maps, on the calling thread: the syscall costs less than a round
// trip through the worker pool. Big ones (memory to preallocate) use Create.
Napi::Value BpfMap::CreateSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CreateSpec c = ReadCreateSpec(info);
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  opts.map_flags = c.flags;
  if (c.inner_fd >= 0) opts.inner_map_fd = c.inner_fd;
  if (c.btf_fd >= 0) {
    opts.btf_fd = c.btf_fd;
    opts.btf_key_type_id = c.btf_key_type_id;
    opts.btf_value_type_id = c.btf_value_type_id;
  }
  int fd = bpf_map_create(static_cast<bpf_map_type>(c.type), c.name.empty() ? nullptr : c.name.c_str(), c.key_size,
                          c.value_size, c.max_entries, &opts);
  if (fd < 0) {
    ThrowErrno(env, ErrFromRet(fd), "bpf_map_create",
               "type " + std::to_string(c.type) + ", key " + std::to_string(c.key_size) + " B, value " +
                   std::to_string(c.value_size) + " B, max_entries " + std::to_string(c.max_entries));
  }
  return Adopt(env, fd);
}

Napi::Value BpfMap::OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = GetString(env, info[0], "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, ErrFromRet(fd), "bpf_obj_get", path);
  std::string kind = BpfFdKind(fd);
  if (kind != "bpf-map") {
    close(fd);
    ThrowErrno(env, EINVAL, "bpf_obj_get", path + " is not a map (it is " + (kind.empty() ? "unknown" : kind) + ")");
  }
  return Adopt(env, fd);
}

Napi::Value BpfMap::FromId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = GetUint32(env, info[0], "id");
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) ThrowErrno(env, ErrFromRet(fd), "bpf_map_get_fd_by_id", "map id " + std::to_string(id));
  return Adopt(env, fd);
}

Napi::Value BpfMap::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), OpenFd(info.Env())); }

Napi::Value BpfMap::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

Napi::Value BpfMap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info map_info;
  int err = MapInfoByFd(OpenFd(env), &map_info);
  if (err) ThrowErrno(env, err, "bpf_obj_get_info_by_fd");
  Napi::Object result = Napi::Object::New(env);
  result.Set("id", map_info.id);
  result.Set("type", map_info.type);
  result.Set("keySize", map_info.key_size);
  result.Set("valueSize", map_info.value_size);
  result.Set("maxEntries", map_info.max_entries);
  result.Set("flags", map_info.map_flags);
  result.Set("name", Napi::String::New(env, map_info.name));
  result.Set("btfId", map_info.btf_id);
  return result;
}

Napi::Value BpfMap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  Napi::Buffer<uint8_t> key = GetBuffer(env, info[0], "key");
  CheckKey(env, key, "key");
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, user_value_size_);
  int ret = bpf_map_lookup_elem(fd, key.Data(), value.Data());
  if (ret < 0) {
    int err = ErrFromRet(ret);
    if (err == ENOENT) return env.Null();
    ThrowErrno(env, err, "bpf_map_lookup_elem");
  }
  return value;
}

BpfMap::UpdateArgs BpfMap::ReadUpdateArgs(const Napi::CallbackInfo& info) const {
  Napi::Env env = info.Env();
  UpdateArgs args{OpenFd(env), GetBuffer(env, info[0], "key"), GetBuffer(env, info[1], "value"), GetUint32(env, info[2], "flags")};
  CheckKey(env, args.key, "key");
  if (args.value.Length() != user_value_size_) {
    throw Napi::TypeError::New(env, "value: expected " + std::to_string(user_value_size_) + " bytes, got " +
                                        std::to_string(args.value.Length()));
  }
  return args;
}

Napi::Value BpfMap::Update(const Napi::CallbackInfo& info) {
  UpdateArgs args = ReadUpdateArgs(info);
  return (new UpdateWorker(info.Env(), args.fd, args.key, args.value, args.flags))->Start();
}

// One element of a map that is not an outer map, on the calling thread.
Napi::Value BpfMap::UpdateSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UpdateArgs args = ReadUpdateArgs(info);
  int ret = bpf_map_update_elem(args.fd, args.key.Data(), args.value.Data(), args.flags);
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_map_update_elem");
  return env.Undefined();
}

Napi::Value BpfMap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  Napi::Buffer<uint8_t> key = GetBuffer(env, info[0], "key");
  CheckKey(env, key, "key");
  return (new DeleteWorker(env, fd, key))->Start();
}

Napi::Value BpfMap::NextKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  const void* key = nullptr;
  if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) {
    Napi::Buffer<uint8_t> current = GetBuffer(env, info[0], "key");
    CheckKey(env, current, "key");
    key = current.Data();
  }
  Napi::Buffer<uint8_t> next = Napi::Buffer<uint8_t>::New(env, key_size_);
  int ret = bpf_map_get_next_key(fd, key, next.Data());
  if (ret < 0) {
    int err = ErrFromRet(ret);
    if (err == ENOENT) return env.Null();
    ThrowErrno(env, err, "bpf_map_get_next_key");
  }
  return next;
}

BpfMap::BatchArgs BpfMap::ReadBatchArgs(const Napi::CallbackInfo& info) const {
  Napi::Env env = info.Env();
  BatchArgs args{OpenFd(env), GetBuffer(env, info[0], "keys"), GetBuffer(env, info[1], "values"), GetUint32(env, info[2], "count"),
                 GetUint32(env, info[3], "flags")};
  if (args.keys.Length() < static_cast<size_t>(args.count) * key_size_ ||
      args.values.Length() < static_cast<size_t>(args.count) * user_value_size_) {
    throw Napi::TypeError::New(env, "keys/values: shorter than count entries");
  }
  return args;
}

Napi::Value BpfMap::UpdateBatch(const Napi::CallbackInfo& info) {
  BatchArgs args = ReadBatchArgs(info);
  return (new UpdateBatchWorker(info.Env(), args.fd, args.keys, args.values, args.count, args.flags))->Start();
}

// A small batch into a map that is not an outer map, on the calling thread
// (an outer-map update waits a grace period: never here). Errors carry
// `processed` like UpdateBatch's.
Napi::Value BpfMap::UpdateBatchSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs args = ReadBatchArgs(info);
  const uint32_t count = args.count;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  opts.elem_flags = args.flags;
  __u32 done = count;
  int ret = bpf_map_update_batch(args.fd, args.keys.Data(), args.values.Data(), &done, &opts);
  if (ret < 0) {
    uint32_t processed = done >= count ? 0 : done;  // as in UpdateBatchWorker
    Napi::Error error = MakeError(env, ErrFromRet(ret), "bpf_map_update_batch",
                                  std::to_string(processed) + " of " + std::to_string(count) + " elements written");
    error.Set("processed", Napi::Number::New(env, processed));
    throw error;
  }
  return Napi::Number::New(env, done);
}

Napi::Value BpfMap::LookupBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  std::vector<uint8_t> cursor;
  bool has_cursor = false;
  if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) {
    Napi::Buffer<uint8_t> in = GetBuffer(env, info[0], "cursor");
    cursor.assign(in.Data(), in.Data() + in.Length());
    cursor.resize(std::max<size_t>(key_size_, 8), 0);
    has_cursor = true;
  }
  uint32_t max_count = GetUint32(env, info[1], "maxCount");
  if (max_count == 0) throw Napi::TypeError::New(env, "maxCount: expected at least 1");
  return (new LookupBatchWorker(env, fd, std::move(cursor), has_cursor, max_count, key_size_, user_value_size_))->Start();
}

Napi::Value BpfMap::DeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  Napi::Buffer<uint8_t> keys = GetBuffer(env, info[0], "keys");
  uint32_t count = GetUint32(env, info[1], "count");
  if (keys.Length() < static_cast<size_t>(count) * key_size_) throw Napi::TypeError::New(env, "keys: shorter than count keys");
  return (new DeleteBatchWorker(env, fd, keys, count))->Start();
}

Napi::Value BpfMap::Freeze(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ret = bpf_map_freeze(OpenFd(env));
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_map_freeze");
  return env.Undefined();
}

Napi::Value BpfMap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  std::string path = GetString(env, info[0], "path");
  int ret = bpf_obj_pin(fd, path.c_str());
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_obj_pin", path);
  return env.Undefined();
}

Napi::Value BpfMap::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  return info.Env().Undefined();
}

}  // namespace mimd
