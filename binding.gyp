{
  "targets": [
    {
      "target_name": "mimd",
      "sources": [
        "addon/addon.cc",
        "addon/errors.cc",
        "addon/libbpf_log.cc",
        "addon/fd.cc",
        "addon/bpf_map.cc",
        "addon/bpf_link.cc",
        "addon/bpf_object.cc",
        "addon/bpf_program.cc",
        "addon/btf.cc",
        "addon/peer.cc",
        "addon/flock.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
