// The BTF of a BPF object as plain JS data: one entry per type id, so that
// TypeScript can build codecs for map keys and values from it. Generic: it
// describes types and knows nothing of maps or slots.
#pragma once
#include <napi.h>

struct btf;

namespace mimd {

// [null, {id, kind, name, ...}, ...]: index = type id (0 is void).
Napi::Array BtfTypes(Napi::Env env, const struct btf* btf);

}  // namespace mimd
