// Per-environment data: the JS constructors, so C++ can create instances
// (a map from bpf_map_create, a link from an attach call).
#pragma once
#include <napi.h>

namespace mimd {

struct AddonData {
  Napi::FunctionReference mapConstructor;
  Napi::FunctionReference linkConstructor;
  Napi::FunctionReference objectConstructor;
  Napi::FunctionReference programConstructor;
};

inline AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

}  // namespace mimd
