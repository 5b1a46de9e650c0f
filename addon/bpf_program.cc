#include "bpf_program.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "addon.h"
#include "bpf_link.h"
#include "errors.h"
#include "fd.h"
#include "worker.h"

namespace mimd {

namespace {

int adopt_token;

constexpr size_t kLogSize = 64 << 10;

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, uint32_t type, std::vector<uint8_t> insns, std::string license, uint32_t attach_type)
      : PromiseWorker(env, "mimd:prog_load"), type_(type), insns_(std::move(insns)), license_(std::move(license)),
        attach_type_(attach_type) {}

  ~LoadWorker() override {
    if (fd_ >= 0) close(fd_);  // only when the promise never took it
  }

  void Execute() override {
    const auto* insns = reinterpret_cast<const bpf_insn*>(insns_.data());
    size_t count = insns_.size() / sizeof(bpf_insn);
    LIBBPF_OPTS(bpf_prog_load_opts, opts);
    opts.expected_attach_type = static_cast<bpf_attach_type>(attach_type_);
    int fd = bpf_prog_load(static_cast<bpf_prog_type>(type_), nullptr, license_.c_str(), insns, count, &opts);
    if (fd >= 0) {
      fd_ = fd;
      return;
    }
    int err = ErrFromRet(fd);
    // Load again with the verifier's log, for the error only.
    std::vector<char> log(kLogSize, '\0');
    opts.log_buf = log.data();
    opts.log_size = static_cast<__u32>(log.size());
    opts.log_level = 1;
    int again = bpf_prog_load(static_cast<bpf_prog_type>(type_), nullptr, license_.c_str(), insns, count, &opts);
    if (again >= 0) close(again);
    Fail(err, "bpf_prog_load", "program type " + std::to_string(type_) + ", " + std::to_string(count) + " instructions");
    failure_.verifierLog = std::string(log.data());
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Number fd_value = Napi::Number::New(env, fd_);
    Napi::Object program =
        GetAddonData(env)->programConstructor.New({Napi::External<int>::New(env, &adopt_token), fd_value});
    fd_ = -1;  // the NativeProgram owns it now
    return program;
  }

 private:
  uint32_t type_;
  std::vector<uint8_t> insns_;
  std::string license_;
  uint32_t attach_type_;
  int fd_ = -1;
};

// Runs the program `repeat` times in the kernel (BPF_PROG_TEST_RUN) off the
// event loop, so that JS can change maps while it runs.
class TestRunWorker : public PromiseWorker {
 public:
  TestRunWorker(Napi::Env env, int fd, std::vector<uint8_t> data, uint32_t repeat)
      : PromiseWorker(env, "mimd:prog_test_run"), fd_(env, fd), data_(std::move(data)), repeat_(repeat) {}

  void Execute() override {
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = data_.data();
    opts.data_size_in = static_cast<__u32>(data_.size());
    opts.repeat = repeat_;
    int ret = bpf_prog_test_run_opts(fd_.get(), &opts);
    if (ret < 0) {
      Fail(ErrFromRet(ret), "bpf_prog_test_run_opts");
      return;
    }
    retval_ = opts.retval;
    duration_ = opts.duration;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("retval", retval_);
    result.Set("duration", duration_);
    return result;
  }

 private:
  WorkerFd fd_;
  std::vector<uint8_t> data_;
  uint32_t repeat_;
  uint32_t retval_ = 0;
  uint32_t duration_ = 0;
};

}  // namespace

void BpfProgram::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeProgram",
                                    {
                                        StaticMethod<&BpfProgram::Load>("load"),
                                        InstanceAccessor<&BpfProgram::GetFd>("fd"),
                                        InstanceAccessor<&BpfProgram::GetClosed>("closed"),
                                        InstanceMethod<&BpfProgram::TestRun>("testRun"),
                                        InstanceMethod<&BpfProgram::LinkCreate>("linkCreate"),
                                        InstanceMethod<&BpfProgram::RawTracepointOpen>("rawTracepointOpen"),
                                        InstanceMethod<&BpfProgram::Close>("close"),
                                    });
  GetAddonData(env)->programConstructor = Napi::Persistent(ctor);
  exports.Set("NativeProgram", ctor);
}

BpfProgram::BpfProgram(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfProgram>(info) {
  if (info.Length() != 2 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &adopt_token) {
    throw Napi::TypeError::New(info.Env(), "NativeProgram: use NativeProgram.load(spec)");
  }
  fd_ = info[1].As<Napi::Number>().Int32Value();
}

BpfProgram::~BpfProgram() {
  if (fd_ >= 0) close(fd_);
}

int BpfProgram::OpenFd(Napi::Env env) const {
  if (fd_ < 0) throw Napi::Error::New(env, "NativeProgram: used after close()");
  return fd_;
}

// load({ type, insns, license, expectedAttachType }): map fds are already in
// the instructions (BPF_PSEUDO_MAP_FD); the kernel takes its own references.
Napi::Value BpfProgram::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "spec: expected an object");
  Napi::Object spec = info[0].As<Napi::Object>();
  uint32_t type = GetUint32(env, spec.Get("type"), "type");
  Napi::Buffer<uint8_t> insns = GetBuffer(env, spec.Get("insns"), "insns");
  if (insns.Length() == 0 || insns.Length() % sizeof(bpf_insn) != 0) {
    throw Napi::TypeError::New(env, "insns: expected a non-empty multiple of 8 bytes");
  }
  std::string license = GetString(env, spec.Get("license"), "license");
  uint32_t attach_type = 0;
  if (spec.Has("expectedAttachType") && !spec.Get("expectedAttachType").IsUndefined()) {
    attach_type = GetUint32(env, spec.Get("expectedAttachType"), "expectedAttachType");
  }
  std::vector<uint8_t> copy(insns.Data(), insns.Data() + insns.Length());
  return (new LoadWorker(env, type, std::move(copy), std::move(license), attach_type))->Start();
}

Napi::Value BpfProgram::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), OpenFd(info.Env())); }

Napi::Value BpfProgram::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

Napi::Value BpfProgram::TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  Napi::Buffer<uint8_t> data = GetBuffer(env, info[0], "data");
  uint32_t repeat = GetUint32(env, info[1], "repeat");
  std::vector<uint8_t> copy(data.Data(), data.Data() + data.Length());
  return (new TestRunWorker(env, fd, std::move(copy), repeat))->Start();
}

// linkCreate(target, attachType, flags): BPF_LINK_CREATE; target is an
// ifindex or an fd, as the attach type reads it.
Napi::Value BpfProgram::LinkCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  int target = static_cast<int>(info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0);
  uint32_t attach_type = GetUint32(env, info[1], "attachType");
  uint32_t flags = GetUint32(env, info[2], "flags");
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  opts.flags = flags;
  int link = bpf_link_create(fd, target, static_cast<bpf_attach_type>(attach_type), &opts);
  if (link < 0) {
    ThrowErrno(env, ErrFromRet(link), "bpf_link_create",
               "attach type " + std::to_string(attach_type) + ", target " + std::to_string(target));
  }
  return BpfLink::Adopt(env, link);
}

Napi::Value BpfProgram::RawTracepointOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env);
  std::string name = GetString(env, info[0], "name");
  int link = bpf_raw_tracepoint_open(name.c_str(), fd);
  if (link < 0) ThrowErrno(env, ErrFromRet(link), "bpf_raw_tracepoint_open", name);
  return BpfLink::Adopt(env, link);
}

Napi::Value BpfProgram::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  return info.Env().Undefined();
}

}  // namespace mimd
