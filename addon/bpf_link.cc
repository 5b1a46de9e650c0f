#include "bpf_link.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <string>

#include "addon.h"
#include "errors.h"
#include "fd.h"

namespace mimd {

namespace {

int adopt_token;

// libbpf 1.1 predates several link types (tcx, netkit, ...): name them here.
const char* LinkTypeName(uint32_t type) {
  static const char* const names[] = {
      "unspec", "raw_tracepoint", "tracing", "cgroup", "iter", "netns", "xdp", "perf_event",
      "kprobe_multi", "struct_ops", "netfilter", "tcx", "uprobe_multi", "netkit", "sockmap",
  };
  return type < sizeof(names) / sizeof(names[0]) ? names[type] : "unknown";
}

constexpr uint32_t kLinkTypeXdp = 6;
constexpr uint32_t kLinkTypeTcx = 11;

}  // namespace

void BpfLink::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeLink",
                                    {
                                        StaticMethod<&BpfLink::OpenPinned>("openPinned"),
                                        InstanceAccessor<&BpfLink::GetFd>("fd"),
                                        InstanceAccessor<&BpfLink::GetClosed>("closed"),
                                        InstanceMethod<&BpfLink::Info>("info"),
                                        InstanceMethod<&BpfLink::Pin>("pin"),
                                        InstanceMethod<&BpfLink::Detach>("detach"),
                                        InstanceMethod<&BpfLink::Close>("close"),
                                    });
  GetAddonData(env)->linkConstructor = Napi::Persistent(ctor);
  exports.Set("NativeLink", ctor);
}

Napi::Object BpfLink::Adopt(Napi::Env env, int fd) {
  Napi::Number fd_value = Napi::Number::New(env, fd);
  try {
    return GetAddonData(env)->linkConstructor.New({Napi::External<int>::New(env, &adopt_token), fd_value});
  } catch (...) {
    close(fd);
    throw;
  }
}

BpfLink::BpfLink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfLink>(info) {
  if (info.Length() != 2 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &adopt_token) {
    throw Napi::TypeError::New(info.Env(), "NativeLink: use NativeObject.attach* or NativeLink.openPinned");
  }
  fd_ = info[1].As<Napi::Number>().Int32Value();
}

BpfLink::~BpfLink() {
  if (fd_ >= 0) close(fd_);
}

int BpfLink::OpenFd(Napi::Env env) const {
  if (fd_ < 0) throw Napi::Error::New(env, "NativeLink: used after close()");
  return fd_;
}

Napi::Value BpfLink::OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = GetString(env, info[0], "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, ErrFromRet(fd), "bpf_obj_get", path);
  std::string kind = BpfFdKind(fd);
  if (kind != "bpf-link") {
    close(fd);
    ThrowErrno(env, EINVAL, "bpf_obj_get", path + " is not a link (it is " + (kind.empty() ? "unknown" : kind) + ")");
  }
  return Adopt(env, fd);
}

Napi::Value BpfLink::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), OpenFd(info.Env())); }

Napi::Value BpfLink::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

Napi::Value BpfLink::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_link_info link_info = {};
  __u32 len = sizeof(link_info);
  int ret = bpf_obj_get_info_by_fd(OpenFd(env), &link_info, &len);
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_obj_get_info_by_fd");
  Napi::Object result = Napi::Object::New(env);
  result.Set("id", link_info.id);
  result.Set("type", link_info.type);
  result.Set("typeName", LinkTypeName(link_info.type));
  result.Set("progId", link_info.prog_id);
  // tcx's info (kernel >= 6.6) starts with ifindex at the same offset as xdp's;
  // Debian's 6.1 UAPI header only names the xdp member.
  if (link_info.type == kLinkTypeXdp || link_info.type == kLinkTypeTcx) {
    result.Set("ifindex", link_info.xdp.ifindex);
  } else {
    result.Set("ifindex", env.Null());
  }
  return result;
}

Napi::Value BpfLink::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  std::string path = GetString(env, info[0], "path");
  int ret = bpf_obj_pin(fd, path.c_str());
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_obj_pin", path);
  return env.Undefined();
}

Napi::Value BpfLink::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ret = bpf_link_detach(OpenFd(env));
  if (ret < 0) ThrowErrno(env, ErrFromRet(ret), "bpf_link_detach");
  return env.Undefined();
}

Napi::Value BpfLink::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  return info.Env().Undefined();
}

}  // namespace mimd
