// ThreadSanitizer suppressions for --config=tsan, compiled into every TSan binary that
// links //third_party:absl (see BUILD). libtsan calls __tsan_default_suppressions() once
// at start-up; TSAN_OPTIONS=suppressions=FILE can add more entries for a local run.
//
// Rules for entries (tests/fuzz/README.md, "TSan"): each names one function inside an
// uninstrumented or known-false-positive library, never our own code, never `race:*`,
// and says why it is safe. A report in our code is a bug to fix, not to suppress.

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
      "race:absl::debian3::synchronization_internal::Waiter::Post\n"
      // Debian's gRPC core (libgrpc, libgpr, libupb) is not instrumented: it hands
      // slices, endpoints and call objects between its threads with its own atomics,
      // which TSan cannot see, and then touches them through intercepted libc calls
      // (recvmsg, sendmsg, memcpy, free) and absl::Mutex. Seen on 2026-11-24:
      // recvmsg into a slice vs grpc_slice_buffer_copy_first_into_buffer's memcpy,
      // tcp_send, grpc_slice_buffer_destroy, ~FilterStackCall, a grpc_tcp's mutex
      // vs its allocation. called_from_lib ignores only interceptors *called from* these
      // libraries; our code's own accesses (instrumented) are still checked.
      "called_from_lib:libgrpc.so.29\n"
      "called_from_lib:libgpr.so.29\n"
      "called_from_lib:libupb.so.29\n"
      // The sync server's per-call object (grpc::Server::SyncRequest, allocated in
      // libgrpc++ on the thread that registered the method) reaches a worker thread
      // through gRPC's completion queue (invisible, as above); the inline grpcpp
      // template that parses the request into it then writes its grpc::Status member,
      // which TSan reports against the allocation. Deserialize runs before our handler
      // is called and touches only gRPC's call object and the request message.
      "race:grpc::internal::ServerStreamingHandler<*>::Deserialize\n";
}
