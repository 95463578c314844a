// ThreadSanitizer suppressions for --config=tsan, compiled into every TSan binary that
// links //third_party:absl (see BUILD). libtsan calls __tsan_default_suppressions() once
// at start-up; TSAN_OPTIONS=suppressions=FILE can add more entries for a local run.
//
// Rules for entries (tests/fuzz/README.md, "TSan"): each names one function inside an
// uninstrumented or known-false-positive library, never our own code, never `race:*`,
// and says why it is safe. A report in our code is a bug to fix, not to suppress.
//
// gRPC needs no entry: --config=tsan loads gRPC built with TSan from /opt/grpc-tsan
// (build_grpc_tsan.sh). The four entries that Debian's uninstrumented gRPC needed
// (called_from_lib:libgrpc/libgpr/libupb, ServerStreamingHandler::Deserialize) were
// removed on 2026-11-24 after the gRPC frontend tests ran clean 3 of 3 without them.

extern "C" const char* __tsan_default_suppressions() {
  return
      // abseil 20220623 (built with TSan by build_absl_tsan.sh) + gcc 12's libtsan:
      // a thread that blocks on a contended absl::Mutex allocates its ThreadIdentity
      // with LowLevelAlloc (mmap; libtsan records the mapping as a write by that
      // thread). The unlocking thread later wakes it with Waiter::Post, an atomic
      // fetch_add on the futex word inside that identity. The hand-off of the identity
      // pointer happens inside Mutex::Lock/Unlock, where abseil deliberately hides its
      // internal synchronisation from TSan (__tsan_mutex_pre_lock ... post_lock), so
      // TSan sees mmap-write vs atomic-write with no edge. Reproduced with a two-thread
      // absl::MutexLock counter (tools/sanitizers/check_absl_tsan.sh). The word is only
      // ever touched by Waiter::Post/Wait/Poke, never by our code.
      "race:absl::debian3::synchronization_internal::Waiter::Post\n";
}
