#include "bpf_object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "addon.h"
#include "bpf_link.h"
#include "bpf_map.h"
#include "btf.h"
#include "errors.h"
#include "fd.h"
#include "libbpf_log.h"
#include "worker.h"

namespace mimd {

namespace {

// Kernel >= 6.6 (tcx); Debian's 6.1 UAPI headers do not name them yet.
constexpr int kAttachTcxIngress = 46;
constexpr int kAttachTcxEgress = 47;

constexpr size_t kVerifierLogSize = 4 << 20;

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

// Appends libbpf's explanation to an error's detail.
std::string WithWarnings(std::string detail, const LogCapture& capture) {
  std::string warnings = capture.warnings();
  while (!warnings.empty() && warnings.back() == '\n') warnings.pop_back();
  if (warnings.empty()) return detail;
  return detail.empty() ? warnings : detail + "; " + warnings;
}

Napi::Object MapDefObject(Napi::Env env, const bpf_map* map) {
  Napi::Object def = Napi::Object::New(env);
  def.Set("name", Napi::String::New(env, bpf_map__name(map)));
  def.Set("type", static_cast<uint32_t>(bpf_map__type(map)));
  def.Set("keySize", bpf_map__key_size(map));
  def.Set("valueSize", bpf_map__value_size(map));
  def.Set("maxEntries", bpf_map__max_entries(map));
  def.Set("flags", bpf_map__map_flags(map));
  return def;
}

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, BpfObject* self, Napi::Object js_self, bpf_object* obj)
      : PromiseWorker(env, "mimd:object_load"), self_(self), self_ref_(Napi::Persistent(js_self)), obj_(obj) {}

  void Execute() override {
    LogCapture capture;
    int ret = bpf_object__load(obj_);
    if (ret < 0) {
      Fail(ErrFromRet(ret), "bpf_object__load", WithWarnings("", capture));
      const std::vector<char>& log = self_->load_log();
      failure_.verifierLog.assign(log.data(), strnlen(log.data(), log.size()));
    }
  }

  void OnOK() override {
    self_->LoadFinished(true);
    PromiseWorker::OnOK();
  }

  void OnError(const Napi::Error& e) override {
    self_->LoadFinished(false);
    PromiseWorker::OnError(e);
  }

 private:
  BpfObject* self_;
  Napi::ObjectReference self_ref_;  // keeps the object alive while it loads
  bpf_object* obj_;
};

class TestRunWorker : public PromiseWorker {
 public:
  TestRunWorker(Napi::Env env, int prog_fd, Napi::Buffer<uint8_t> data, std::vector<uint8_t> ctx, uint32_t repeat,
                uint32_t size_out)
      : PromiseWorker(env, "mimd:prog_test_run"), fd_(env, prog_fd), data_(data), ctx_(std::move(ctx)),
        repeat_(repeat), out_(size_out, 0) {}

  void Execute() override {
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = data_.data();
    opts.data_size_in = static_cast<__u32>(data_.length());
    opts.data_out = out_.data();
    opts.data_size_out = static_cast<__u32>(out_.size());
    opts.repeat = repeat_;
    if (!ctx_.empty()) {
      opts.ctx_in = ctx_.data();
      opts.ctx_size_in = static_cast<__u32>(ctx_.size());
    }
    int ret = bpf_prog_test_run_opts(fd_.get(), &opts);
    if (ret < 0) {
      Fail(ErrFromRet(ret), "bpf_prog_test_run_opts");
      return;
    }
    retval_ = opts.retval;
    duration_ = opts.duration;
    out_.resize(std::min<size_t>(opts.data_size_out, out_.size()));
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("retval", retval_);
    result.Set("data", Napi::Buffer<uint8_t>::Copy(env, out_.data(), out_.size()));
    result.Set("duration", duration_);
    return result;
  }

 private:
  WorkerFd fd_;
  HeldBuffer data_;
  std::vector<uint8_t> ctx_;
  uint32_t repeat_;
  std::vector<uint8_t> out_;
  uint32_t retval_ = 0;
  uint32_t duration_ = 0;
};

}  // namespace

void BpfObject::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeObject",
      {
          StaticMethod<&BpfObject::Open>("open"),
          InstanceAccessor<&BpfObject::GetName>("name"),
          InstanceAccessor<&BpfObject::GetLoaded>("loaded"),
          InstanceAccessor<&BpfObject::GetClosed>("closed"),
          InstanceMethod<&BpfObject::Maps>("maps"),
          InstanceMethod<&BpfObject::Programs>("programs"),
          InstanceMethod<&BpfObject::Btf>("btf"),
          InstanceMethod<&BpfObject::BtfFd>("btfFd"),
          InstanceMethod<&BpfObject::ReuseMapFd>("reuseMapFd"),
          InstanceMethod<&BpfObject::SetInnerMapFd>("setInnerMapFd"),
          InstanceMethod<&BpfObject::SetPinPath>("setPinPath"),
          InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
          InstanceMethod<&BpfObject::Load>("load"),
          InstanceMethod<&BpfObject::Map>("map"),
          InstanceMethod<&BpfObject::ProgramId>("programId"),
          InstanceMethod<&BpfObject::UpdateLink>("updateLink"),
          InstanceMethod<&BpfObject::AttachXdp>("attachXdp"),
          InstanceMethod<&BpfObject::AttachTc>("attachTc"),
          InstanceMethod<&BpfObject::AttachTracepoint>("attachTracepoint"),
          InstanceMethod<&BpfObject::AttachRawTracepoint>("attachRawTracepoint"),
          InstanceMethod<&BpfObject::TestRun>("testRun"),
          InstanceMethod<&BpfObject::Close>("close"),
      });
  GetAddonData(env)->objectConstructor = Napi::Persistent(ctor);
  exports.Set("NativeObject", ctor);
}

BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(env, "NativeObject: use NativeObject.open(path)");
  }
  obj_ = info[0].As<Napi::External<bpf_object>>().Data();
  name_ = bpf_object__name(obj_);
  RecordInnerTemplates();
}

void BpfObject::RecordInnerTemplates() {
  bpf_map* map;
  bpf_object__for_each_map(map, obj_) {
    btf_ids_[bpf_map__name(map)] = {bpf_map__btf_key_type_id(map), bpf_map__btf_value_type_id(map)};
    const bpf_map* inner = bpf_map__inner_map(map);
    if (inner == nullptr) continue;
    inner_templates_[bpf_map__name(map)] = InnerTemplate{
        bpf_map__name(inner),        static_cast<uint32_t>(bpf_map__type(inner)), bpf_map__key_size(inner),
        bpf_map__value_size(inner), bpf_map__max_entries(inner),                 bpf_map__map_flags(inner),
        bpf_map__btf_key_type_id(inner), bpf_map__btf_value_type_id(inner)};
  }
}

BpfObject::~BpfObject() {
  ReleaseInnerFds();
  if (obj_ != nullptr) bpf_object__close(obj_);
}

void BpfObject::ReleaseInnerFds() {
  for (auto& entry : inner_fds_) close(entry.second);
  inner_fds_.clear();
}

Napi::Value BpfObject::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = GetString(env, info[0], "path");
  std::string name, pin_root;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object options = info[1].As<Napi::Object>();
    if (options.Has("name") && !options.Get("name").IsUndefined()) name = GetString(env, options.Get("name"), "name");
    if (options.Has("pinRoot") && !options.Get("pinRoot").IsUndefined()) {
      pin_root = GetString(env, options.Get("pinRoot"), "pinRoot");
    }
  }
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  if (!name.empty()) opts.object_name = name.c_str();
  if (!pin_root.empty()) opts.pin_root_path = pin_root.c_str();
  LogCapture capture;
  bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
  if (obj == nullptr) ThrowErrno(env, errno, "bpf_object__open_file", WithWarnings(path, capture));
  try {
    return GetAddonData(env)->objectConstructor.New({Napi::External<bpf_object>::New(env, obj)});
  } catch (...) {
    bpf_object__close(obj);
    throw;
  }
}

bpf_object* BpfObject::Usable(Napi::Env env) const {
  if (obj_ == nullptr) throw Napi::Error::New(env, "NativeObject: used after close()");
  if (loading_) throw Napi::Error::New(env, "NativeObject " + name_ + ": load() is in progress");
  return obj_;
}

void BpfObject::RequireNotLoaded(Napi::Env env, const char* what) const {
  Usable(env);
  if (loaded_) throw Napi::Error::New(env, std::string(what) + ": only before load() (object " + name_ + " is loaded)");
}

void BpfObject::RequireLoaded(Napi::Env env, const char* what) const {
  Usable(env);
  if (!loaded_) throw Napi::Error::New(env, std::string(what) + ": only after load() (object " + name_ + " is not loaded)");
}

bpf_map* BpfObject::FindMap(Napi::Env env, const Napi::Value& value) const {
  std::string name = GetString(env, value, "mapName");
  bpf_map* map = bpf_object__find_map_by_name(Usable(env), name.c_str());
  if (map == nullptr) throw Napi::TypeError::New(env, "mapName: no map named " + Quoted(name) + " in object " + name_);
  return map;
}

bpf_program* BpfObject::FindProgram(Napi::Env env, const Napi::Value& value) const {
  std::string name = GetString(env, value, "progName");
  bpf_program* prog = bpf_object__find_program_by_name(Usable(env), name.c_str());
  if (prog == nullptr) {
    std::string known;
    bpf_program* p;
    bpf_object__for_each_program(p, obj_) known += std::string(known.empty() ? "" : ", ") + bpf_program__name(p);
    throw Napi::TypeError::New(env, "progName: no program named " + Quoted(name) + " in object " + name_ +
                                        " (it has: " + known + ")");
  }
  return prog;
}

int BpfObject::ProgramFd(Napi::Env env, const Napi::Value& value) const {
  RequireLoaded(env, "program");
  bpf_program* prog = FindProgram(env, value);
  int fd = bpf_program__fd(prog);
  if (fd < 0) {
    throw Napi::Error::New(env, std::string("program ") + Quoted(bpf_program__name(prog)) + " was not loaded (autoload off)");
  }
  return fd;
}

void BpfObject::LoadFinished(bool ok) {
  loading_ = false;
  loaded_ = ok;
  ReleaseInnerFds();  // the kernel holds the templates now (or load failed)
  load_log_.clear();
  load_log_.shrink_to_fit();
}

Napi::Value BpfObject::GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
Napi::Value BpfObject::GetLoaded(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), loaded_); }
Napi::Value BpfObject::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), obj_ == nullptr); }

Napi::Value BpfObject::Maps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Usable(env);
  Napi::Array result = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    Napi::Object def = MapDefObject(env, map);
    auto ids = btf_ids_.find(bpf_map__name(map));
    def.Set("btfKeyTypeId", ids != btf_ids_.end() ? ids->second.first : 0);
    def.Set("btfValueTypeId", ids != btf_ids_.end() ? ids->second.second : 0);
    const char* pin = bpf_map__pin_path(map);
    def.Set("pinPath", pin ? Napi::Value(Napi::String::New(env, pin)) : env.Null());
    def.Set("internal", bpf_map__is_internal(map));
    const std::string name = bpf_map__name(map);
    auto inner = inner_templates_.find(name);
    if (inner != inner_templates_.end()) {
      const InnerTemplate& tpl = inner->second;
      Napi::Object inner_def = Napi::Object::New(env);
      inner_def.Set("name", tpl.name);
      inner_def.Set("type", tpl.type);
      inner_def.Set("keySize", tpl.key_size);
      inner_def.Set("valueSize", tpl.value_size);
      inner_def.Set("maxEntries", tpl.max_entries);
      inner_def.Set("flags", tpl.flags);
      inner_def.Set("btfKeyTypeId", tpl.btf_key_type_id);
      inner_def.Set("btfValueTypeId", tpl.btf_value_type_id);
      def.Set("inner", inner_def);
    } else {
      def.Set("inner", env.Null());
    }
    result.Set(i++, def);
  }
  return result;
}

// The fd of the object's BTF in the kernel (loaded with the object), or -1
// before load or without BTF. Owned by the object: valid until close().
Napi::Value BpfObject::BtfFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const struct btf* btf = bpf_object__btf(Usable(env));
  return Napi::Number::New(env, btf == nullptr ? -1 : btf__fd(btf));
}

Napi::Value BpfObject::Btf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const struct btf* btf = bpf_object__btf(Usable(env));
  if (btf == nullptr) return env.Null();
  return BtfTypes(env, btf);
}

Napi::Value BpfObject::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Usable(env);
  Napi::Array result = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object def = Napi::Object::New(env);
    def.Set("name", bpf_program__name(prog));
    def.Set("section", bpf_program__section_name(prog));
    def.Set("type", static_cast<uint32_t>(bpf_program__type(prog)));
    const char* type_name = libbpf_bpf_prog_type_str(bpf_program__type(prog));
    def.Set("typeName", type_name ? type_name : "unknown");
    def.Set("autoload", bpf_program__autoload(prog));
    result.Set(i++, def);
  }
  return result;
}

Napi::Value BpfObject::ReuseMapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "reuseMapFd");
  bpf_map* map = FindMap(env, info[0]);
  int fd = static_cast<int>(GetUint32(env, info[1], "fd"));
  // libbpf dups the fd: the caller keeps owning its own.
  int ret = bpf_map__reuse_fd(map, fd);
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_map__reuse_fd", std::string("map ") + bpf_map__name(map));
  return env.Undefined();
}

Napi::Value BpfObject::SetInnerMapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "setInnerMapFd");
  bpf_map* map = FindMap(env, info[0]);
  int fd = static_cast<int>(GetUint32(env, info[1], "fd"));
  const std::string name = bpf_map__name(map);
  if (inner_fds_.count(name)) {
    throw Napi::Error::New(env, "setInnerMapFd: the inner map of " + Quoted(name) + " is already set");
  }
  // libbpf borrows the fd until load: own a dup so the caller may close theirs.
  int copy = DupCloexecOrThrow(env, fd);
  int ret = bpf_map__set_inner_map_fd(map, copy);
  if (ret < 0) {
    close(copy);
    ThrowErrno(env, ErrFromRet(ret), "bpf_map__set_inner_map_fd", "map " + name);
  }
  inner_fds_[name] = copy;
  bpf_map_info inner_info = {};
  __u32 len = sizeof(inner_info);
  ret = bpf_obj_get_info_by_fd(copy, &inner_info, &len);
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_obj_get_info_by_fd", "inner map of " + name);
  // A template given by fd carries no BTF of this object: its entries are raw.
  inner_templates_[name] = InnerTemplate{inner_info.name,      inner_info.type,        inner_info.key_size,
                                         inner_info.value_size, inner_info.max_entries, inner_info.map_flags, 0, 0};
  return env.Undefined();
}

Napi::Value BpfObject::SetPinPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "setPinPath");
  bpf_map* map = FindMap(env, info[0]);
  std::string path;
  if (!info[1].IsNull() && !info[1].IsUndefined()) path = GetString(env, info[1], "path");
  int ret = bpf_map__set_pin_path(map, path.empty() ? nullptr : path.c_str());
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_map__set_pin_path", path);
  return env.Undefined();
}

Napi::Value BpfObject::SetAutoload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "setAutoload");
  bpf_program* prog = FindProgram(env, info[0]);
  if (!info[1].IsBoolean()) throw Napi::TypeError::New(env, "autoload: expected a boolean");
  int ret = bpf_program__set_autoload(prog, info[1].As<Napi::Boolean>().Value());
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_program__set_autoload");
  return env.Undefined();
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "load");
  load_log_.assign(kVerifierLogSize, 0);
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj_) bpf_program__set_log_buf(prog, load_log_.data(), load_log_.size());
  auto* worker = new LoadWorker(env, this, Value(), obj_);
  loading_ = true;
  return worker->Start();
}

Napi::Value BpfObject::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env, "map");
  bpf_map* map = FindMap(env, info[0]);
  int fd = bpf_map__fd(map);
  if (fd < 0) throw Napi::Error::New(env, std::string("map ") + Quoted(bpf_map__name(map)) + " has no fd (not created)");
  return BpfMap::Adopt(env, DupCloexecOrThrow(env, fd));
}

Napi::Value BpfObject::ProgramId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ProgramFd(env, info[0]);
  bpf_prog_info prog_info = {};
  __u32 len = sizeof(prog_info);
  int ret = bpf_obj_get_info_by_fd(fd, &prog_info, &len);
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_obj_get_info_by_fd");
  return Napi::Number::New(env, prog_info.id);
}

// Puts this object's program into an existing link (e.g. one pinned by an
// earlier run) in one step: the hook never runs without a program, which is
// how an upgrade keeps enforcing. Kernels refuse it for link types that cannot
// swap programs (perf_event: EOPNOTSUPP/EINVAL).
Napi::Value BpfObject::UpdateLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = ProgramFd(env, info[0]);
  int link_fd = static_cast<int>(GetUint32(env, info[1], "linkFd"));
  int ret = bpf_link_update(link_fd, prog_fd, nullptr);
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_link_update");
  return env.Undefined();
}

Napi::Value BpfObject::AttachXdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = ProgramFd(env, info[0]);
  uint32_t ifindex = GetUint32(env, info[1], "ifindex");
  std::string mode = GetString(env, info[2], "mode");
  uint32_t flags;
  if (mode == "auto") flags = 0;
  else if (mode == "generic") flags = XDP_FLAGS_SKB_MODE;
  else if (mode == "native") flags = XDP_FLAGS_DRV_MODE;
  else if (mode == "offload") flags = XDP_FLAGS_HW_MODE;
  else throw Napi::TypeError::New(env, "mode: expected one of auto, generic, native, offload");
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  opts.flags = flags;
  int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex), BPF_XDP, &opts);
  if (fd < 0) ThrowErrno(env, ErrFromRet(fd), "bpf_link_create", "xdp on ifindex " + std::to_string(ifindex) + ", mode " + mode);
  return BpfLink::Adopt(env, fd);
}

Napi::Value BpfObject::AttachTc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = ProgramFd(env, info[0]);
  uint32_t ifindex = GetUint32(env, info[1], "ifindex");
  std::string direction = GetString(env, info[2], "direction");
  int attach_type;
  if (direction == "ingress") attach_type = kAttachTcxIngress;
  else if (direction == "egress") attach_type = kAttachTcxEgress;
  else throw Napi::TypeError::New(env, "direction: expected one of ingress, egress");
  // tcx links (kernel >= 6.6) live in the clsact position without a qdisc and
  // can be pinned, like every other attachment mimd makes.
  int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex), static_cast<bpf_attach_type>(attach_type), nullptr);
  if (fd < 0) {
    ThrowErrno(env, ErrFromRet(fd), "bpf_link_create", "tcx " + direction + " on ifindex " + std::to_string(ifindex));
  }
  return BpfLink::Adopt(env, fd);
}

Napi::Value BpfObject::AttachTracepoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ProgramFd(env, info[0]);
  bpf_program* prog = FindProgram(env, info[0]);
  std::string category = GetString(env, info[1], "category");
  std::string name = GetString(env, info[2], "name");
  LogCapture capture;
  bpf_link* link = bpf_program__attach_tracepoint(prog, category.c_str(), name.c_str());
  if (link == nullptr) {
    ThrowErrno(env, errno, "bpf_program__attach_tracepoint", WithWarnings("tracepoint " + category + "/" + name, capture));
  }
  // Take the link's fd as our own and let libbpf free its bookkeeping without
  // detaching (the kernel link holds the perf event).
  int fd = DupCloexec(bpf_link__fd(link));
  bpf_link__disconnect(link);
  bpf_link__destroy(link);
  if (fd < 0) ThrowErrno(env, -fd, "fcntl(F_DUPFD_CLOEXEC)");
  return BpfLink::Adopt(env, fd);
}

Napi::Value BpfObject::AttachRawTracepoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = ProgramFd(env, info[0]);
  std::string name = GetString(env, info[1], "name");
  int fd = bpf_raw_tracepoint_open(name.c_str(), prog_fd);
  if (fd < 0) ThrowErrno(env, ErrFromRet(fd), "bpf_raw_tracepoint_open", "raw tracepoint " + name);
  return BpfLink::Adopt(env, fd);
}

Napi::Value BpfObject::TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = ProgramFd(env, info[0]);
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "input: expected an object");
  Napi::Object input = info[1].As<Napi::Object>();
  Napi::Buffer<uint8_t> data = GetBuffer(env, input.Get("data"), "data");
  uint32_t repeat = 1;
  if (input.Has("repeat") && !input.Get("repeat").IsUndefined()) repeat = GetUint32(env, input.Get("repeat"), "repeat");
  // Room for programs that grow the packet (xdp_adjust_tail/head).
  uint32_t size_out = static_cast<uint32_t>(data.Length()) + 4096;
  if (input.Has("dataSizeOut") && !input.Get("dataSizeOut").IsUndefined()) {
    size_out = GetUint32(env, input.Get("dataSizeOut"), "dataSizeOut");
  }
  // The program's context (e.g. struct xdp_md with ingress_ifindex), if given.
  std::vector<uint8_t> ctx;
  if (input.Has("ctx") && !input.Get("ctx").IsUndefined()) {
    Napi::Buffer<uint8_t> ctx_in = GetBuffer(env, input.Get("ctx"), "ctx");
    ctx.assign(ctx_in.Data(), ctx_in.Data() + ctx_in.Length());
  }
  return (new TestRunWorker(env, prog_fd, data, std::move(ctx), repeat, size_out))->Start();
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (loading_) throw Napi::Error::New(env, "NativeObject " + name_ + ": cannot close while load() is in progress");
  ReleaseInnerFds();
  if (obj_ != nullptr) {
    bpf_object__close(obj_);
    obj_ = nullptr;
  }
  return env.Undefined();
}

}  // namespace mimd
