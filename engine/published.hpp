#pragma once
// One immutable value published whole by one thread and taken by others when they choose: a
// configuration a SIGHUP replaces while every core keeps serving. A reader copies the pointer
// under the mutex, held for that copy only, and then reads its own reference without a lock;
// readers take it at a reload, never on a hot path. A value once published never changes, so
// a core that holds the old one keeps a consistent view until it takes the new one.
#include <memory>
#include <mutex>
#include <utility>

namespace wsedge {

template <class T>
class Published {
 public:
  explicit Published(std::shared_ptr<const T> v) : v_(std::move(v)) {}
  void publish(std::shared_ptr<const T> v) {
    std::lock_guard<std::mutex> lock(mu_);
    v_.swap(v);  // the old value is freed after the unlock, by whoever drops it last
  }
  std::shared_ptr<const T> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return v_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const T> v_;
};

}  // namespace wsedge
