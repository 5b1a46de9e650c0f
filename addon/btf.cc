#include "btf.h"

#include <bpf/btf.h>
#include <linux/btf.h>

#include <string>

namespace mimd {

namespace {

const char* KindName(__u16 kind) {
  switch (kind) {
    case BTF_KIND_INT: return "int";
    case BTF_KIND_PTR: return "ptr";
    case BTF_KIND_ARRAY: return "array";
    case BTF_KIND_STRUCT: return "struct";
    case BTF_KIND_UNION: return "union";
    case BTF_KIND_ENUM: return "enum";
    case BTF_KIND_FWD: return "fwd";
    case BTF_KIND_TYPEDEF: return "typedef";
    case BTF_KIND_VOLATILE: return "volatile";
    case BTF_KIND_CONST: return "const";
    case BTF_KIND_RESTRICT: return "restrict";
    case BTF_KIND_FUNC: return "func";
    case BTF_KIND_FUNC_PROTO: return "func_proto";
    case BTF_KIND_VAR: return "var";
    case BTF_KIND_DATASEC: return "datasec";
    case BTF_KIND_FLOAT: return "float";
    case BTF_KIND_DECL_TAG: return "decl_tag";
    case BTF_KIND_TYPE_TAG: return "type_tag";
    case BTF_KIND_ENUM64: return "enum64";
    default: return "unknown";
  }
}

std::string Name(const struct btf* btf, __u32 offset) {
  const char* name = btf__name_by_offset(btf, offset);
  return name ? name : "";
}

// 64-bit enum values and sizes as JS numbers lose precision above 2^53: as
// decimal strings then.
Napi::Value Int64Value(Napi::Env env, long long value, bool is_signed) {
  if (is_signed) {
    if (value >= -(1LL << 53) && value <= (1LL << 53)) return Napi::Number::New(env, static_cast<double>(value));
    return Napi::String::New(env, std::to_string(value));
  }
  unsigned long long u = static_cast<unsigned long long>(value);
  if (u <= (1ULL << 53)) return Napi::Number::New(env, static_cast<double>(u));
  return Napi::String::New(env, std::to_string(u));
}

Napi::Object Describe(Napi::Env env, const struct btf* btf, __u32 id, const struct btf_type* t) {
  Napi::Object type = Napi::Object::New(env);
  __u16 kind = btf_kind(t);
  type.Set("id", id);
  type.Set("kind", KindName(kind));
  type.Set("name", Name(btf, t->name_off));
  switch (kind) {
    case BTF_KIND_INT: {
      __u8 encoding = btf_int_encoding(t);
      type.Set("size", t->size);
      type.Set("bits", btf_int_bits(t));
      type.Set("bitOffset", btf_int_offset(t));
      type.Set("signed", (encoding & BTF_INT_SIGNED) != 0);
      type.Set("char", (encoding & BTF_INT_CHAR) != 0);
      type.Set("bool", (encoding & BTF_INT_BOOL) != 0);
      break;
    }
    case BTF_KIND_FLOAT:
      type.Set("size", t->size);
      break;
    case BTF_KIND_ARRAY: {
      const struct btf_array* array = btf_array(t);
      type.Set("type", array->type);
      type.Set("indexType", array->index_type);
      type.Set("nelems", array->nelems);
      break;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      type.Set("size", t->size);
      Napi::Array members = Napi::Array::New(env);
      const struct btf_member* m = btf_members(t);
      for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
        Napi::Object member = Napi::Object::New(env);
        member.Set("name", Name(btf, m->name_off));
        member.Set("type", m->type);
        member.Set("bitOffset", btf_member_bit_offset(t, i));
        member.Set("bitfieldSize", btf_member_bitfield_size(t, i));
        members.Set(i, member);
      }
      type.Set("members", members);
      break;
    }
    case BTF_KIND_ENUM: {
      type.Set("size", t->size);
      bool is_signed = btf_kflag(t);
      type.Set("signed", is_signed);
      Napi::Array values = Napi::Array::New(env);
      const struct btf_enum* e = btf_enum(t);
      for (__u16 i = 0; i < btf_vlen(t); i++, e++) {
        Napi::Object value = Napi::Object::New(env);
        value.Set("name", Name(btf, e->name_off));
        value.Set("value", is_signed ? Int64Value(env, e->val, true) : Int64Value(env, static_cast<__u32>(e->val), false));
        values.Set(i, value);
      }
      type.Set("values", values);
      break;
    }
    case BTF_KIND_ENUM64: {
      type.Set("size", t->size);
      bool is_signed = btf_kflag(t);
      type.Set("signed", is_signed);
      Napi::Array values = Napi::Array::New(env);
      const struct btf_enum64* e = btf_enum64(t);
      for (__u16 i = 0; i < btf_vlen(t); i++, e++) {
        Napi::Object value = Napi::Object::New(env);
        value.Set("name", Name(btf, e->name_off));
        value.Set("value", Int64Value(env, static_cast<long long>(btf_enum64_value(e)), is_signed));
        values.Set(i, value);
      }
      type.Set("values", values);
      break;
    }
    case BTF_KIND_FWD:
      type.Set("union", btf_kflag(t));
      break;
    case BTF_KIND_PTR:
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
    case BTF_KIND_TYPE_TAG:
    case BTF_KIND_FUNC:
    case BTF_KIND_VAR:
    case BTF_KIND_DECL_TAG:
      type.Set("type", t->type);
      break;
    case BTF_KIND_DATASEC:
    case BTF_KIND_FUNC_PROTO:
    default:
      // Not needed to describe map keys and values.
      break;
  }
  return type;
}

}  // namespace

Napi::Array BtfTypes(Napi::Env env, const struct btf* btf) {
  Napi::Array types = Napi::Array::New(env);
  __u32 count = btf__type_cnt(btf);
  types.Set(0u, env.Null());
  for (__u32 id = 1; id < count; id++) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    types.Set(id, t ? Napi::Value(Describe(env, btf, id, t)) : env.Null());
  }
  return types;
}

}  // namespace mimd
