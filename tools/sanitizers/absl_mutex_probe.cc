// Probe for tools/sanitizers/check_absl_tsan.sh: shows whether TSan understands
// absl::Mutex and absl::Notification in this build. Correct synchronisation must give no
// report; built with -DMOE_PROBE_RACE one increment skips the lock, and TSan must say so.
#include <cstdio>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

int main() {
  absl::Mutex mu;
  long counter = 0;
  auto work = [&](bool locked) {
    for (int i = 0; i < 100000; ++i) {
      if (locked) {
        absl::MutexLock lock(&mu);
        ++counter;
      } else {
        ++counter;
      }
    }
  };
#ifdef MOE_PROBE_RACE
  const bool second_locked = false;
#else
  const bool second_locked = true;
#endif
  std::thread a(work, true), b(work, second_locked);
  a.join();
  b.join();

  // Plain int handed over by a Notification: the edge must come from abseil.
  int payload = 0;
  absl::Notification ready;
  std::thread producer([&] {
    payload = 42;
    ready.Notify();
  });
  ready.WaitForNotification();
  std::printf("counter=%ld payload=%d\n", counter, payload);
  producer.join();
  return 0;
}
