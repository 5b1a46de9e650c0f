// Registers the addon's classes and functions; nothing else lives here.
#include <napi.h>
#include <bpf/libbpf.h>

#include "addon.h"
#include "errors.h"
#include "bpf_link.h"
#include "bpf_map.h"
#include "bpf_object.h"
#include "bpf_program.h"
#include "flock.h"
#include "libbpf_log.h"
#include "peer.h"

namespace mimd {

Napi::Value PossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), -n, "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), n);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  BpfMap::Init(env, exports);
  BpfLink::Init(env, exports);
  BpfObject::Init(env, exports);
  BpfProgram::Init(env, exports);
  InitLibbpfLog(env, exports);
  exports.Set("lockExclusive", Napi::Function::New(env, LockExclusive, "lockExclusive"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpus, "possibleCpus"));
  exports.Set("libbpfVersion", Napi::String::New(env, libbpf_version_string()));
  return exports;
}

}  // namespace mimd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mimd::Init(env, exports); }

NODE_API_MODULE(mimd, InitModule)
