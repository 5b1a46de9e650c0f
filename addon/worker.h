// Promise-returning work off the event loop thread (node-addon-examples
// async_work_promise). Execute() may touch only plain C++ data copied in the
// constructor: fds are dup'ed so a concurrent close() from JS cannot pull them
// away, and buffers are held by reference so they stay alive until OnOK/OnError.
#pragma once
#include <napi.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "errors.h"
#include "fd.h"

namespace mimd {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* resource)
      : Napi::AsyncWorker(env, resource), deferred_(Napi::Promise::Deferred::New(env)) {}

  // Queues the work and returns its promise.
  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  void Fail(int err, const std::string& syscall, const std::string& detail = "") {
    failure_.err = err;
    failure_.syscall = syscall;
    failure_.detail = detail;
    SetError(syscall);
  }

  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // Adds fields to the error (e.g. how many batch elements were processed).
  virtual void Decorate(Napi::Error& error) {}

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    }
  }

  void OnError(const Napi::Error&) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Error error = MakeError(env, failure_);
    Decorate(error);
    deferred_.Reject(error.Value());
  }

  Failure failure_;

 private:
  Napi::Promise::Deferred deferred_;
};

// An fd owned by one worker for the duration of its work.
class WorkerFd {
 public:
  WorkerFd() = default;
  WorkerFd(Napi::Env env, int fd) : fd_(fd >= 0 ? DupCloexecOrThrow(env, fd) : -1) {}
  ~WorkerFd() {
    if (fd_ >= 0) close(fd_);
  }
  WorkerFd(const WorkerFd&) = delete;
  WorkerFd& operator=(const WorkerFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// A JS Buffer kept alive for a worker; data() is stable while the reference lives.
class HeldBuffer {
 public:
  HeldBuffer() = default;
  explicit HeldBuffer(Napi::Buffer<uint8_t> buffer)
      : ref_(Napi::Persistent(buffer)), data_(buffer.Data()), length_(buffer.Length()) {}
  uint8_t* data() const { return data_; }
  size_t length() const { return length_; }
  bool empty() const { return data_ == nullptr; }

 private:
  Napi::Reference<Napi::Buffer<uint8_t>> ref_;
  uint8_t* data_ = nullptr;
  size_t length_ = 0;
};

}  // namespace mimd
