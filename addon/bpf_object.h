// NativeObject: a BPF ELF object (struct bpf_object). Open, configure before
// load (reuse map fds, inner templates, pin paths), load off the event loop,
// then hand out owned map handles, attach programs as links, test-run them.
#pragma once
#include <napi.h>

#include <map>
#include <string>
#include <vector>

struct bpf_object;
struct bpf_program;
struct bpf_map;

namespace mimd {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);

  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;

  // Called by the load worker on the JS thread when loading ends.
  void LoadFinished(bool ok);
  std::vector<char>& load_log() { return load_log_; }

 private:
  static Napi::Value Open(const Napi::CallbackInfo& info);

  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value GetLoaded(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Btf(const Napi::CallbackInfo& info);
  Napi::Value BtfFd(const Napi::CallbackInfo& info);
  Napi::Value ReuseMapFd(const Napi::CallbackInfo& info);
  Napi::Value SetInnerMapFd(const Napi::CallbackInfo& info);
  Napi::Value SetPinPath(const Napi::CallbackInfo& info);
  Napi::Value SetAutoload(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value ProgramId(const Napi::CallbackInfo& info);
  Napi::Value UpdateLink(const Napi::CallbackInfo& info);
  Napi::Value AttachXdp(const Napi::CallbackInfo& info);
  Napi::Value AttachTc(const Napi::CallbackInfo& info);
  Napi::Value AttachTracepoint(const Napi::CallbackInfo& info);
  Napi::Value AttachRawTracepoint(const Napi::CallbackInfo& info);
  Napi::Value TestRun(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // Guards: each throws a plain Error naming the state that forbids the call.
  bpf_object* Usable(Napi::Env env) const;
  void RequireNotLoaded(Napi::Env env, const char* what) const;
  void RequireLoaded(Napi::Env env, const char* what) const;
  bpf_map* FindMap(Napi::Env env, const Napi::Value& name) const;
  bpf_program* FindProgram(Napi::Env env, const Napi::Value& name) const;
  int ProgramFd(Napi::Env env, const Napi::Value& name) const;
  void ReleaseInnerFds();

  bpf_object* obj_ = nullptr;
  std::string name_;
  bool loaded_ = false;
  bool loading_ = false;
  // Inner templates by outer map name, recorded at open (and on setInnerMapFd):
  // libbpf frees its copy once the outer map is created, and the kernel
  // cannot report it, so the object remembers it.
  struct InnerTemplate {
    std::string name;
    uint32_t type, key_size, value_size, max_entries, flags;
    uint32_t btf_key_type_id, btf_value_type_id;
  };
  std::map<std::string, InnerTemplate> inner_templates_;
  // BTF key/value type ids by map name, recorded at open: libbpf clears an
  // outer map's key type id when it creates the map.
  std::map<std::string, std::pair<uint32_t, uint32_t>> btf_ids_;
  void RecordInnerTemplates();
  // fds given to bpf_map__set_inner_map_fd: libbpf borrows them until load.
  std::map<std::string, int> inner_fds_;
  // One verifier log buffer shared by all programs: libbpf stops at the first
  // program that fails, so what is left in it is that program's log.
  std::vector<char> load_log_;
};

}  // namespace mimd
