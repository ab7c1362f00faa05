#include "core/ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace mcpgate::core {
namespace {

std::string read_sysctl(const char* path) {
  std::ifstream in(path);
  std::string value;
  if (in) std::getline(in, value);
  return value;
}

std::string setup_failure(int err) {
  std::string disabled = read_sysctl("/proc/sys/kernel/io_uring_disabled");
  switch (err) {
    case EPERM:
    case EACCES:
      if (disabled == "2")
        return "io_uring is disabled on this host (kernel.io_uring_disabled=2); set "
               "`sysctl kernel.io_uring_disabled=0` to run mcpgate";
      if (disabled == "1")
        return "io_uring is restricted to privileged processes on this host "
               "(kernel.io_uring_disabled=1); set it to 0, or add this user to the group in "
               "kernel.io_uring_group";
      return "io_uring_setup was refused with EPERM, most likely by a seccomp profile (Docker's "
             "default profile blocks io_uring); run with a profile that allows io_uring_setup, "
             "io_uring_enter and io_uring_register";
    case ENOSYS:
      return "this kernel has no io_uring (ENOSYS); mcpgate needs Linux 6.1 or later built "
             "with CONFIG_IO_URING";
    case EINVAL:
      return "this kernel rejects the io_uring setup flags SINGLE_ISSUER|DEFER_TASKRUN "
             "(EINVAL); mcpgate needs Linux 6.1 or later";
    case ENOMEM:
      return "io_uring_setup failed with ENOMEM: raise RLIMIT_MEMLOCK (ulimit -l) or free memory";
    default:
      return std::string("io_uring_setup failed: ") + std::strerror(err);
  }
}

io_uring_params shard_params() {
  io_uring_params p{};
  // SINGLE_ISSUER: only the shard thread submits, which lets the kernel skip locking.
  // DEFER_TASKRUN: completion work runs when we wait, batched, not as interrupts.
  // SUBMIT_ALL: one bad SQE does not stop the rest of a batch from being submitted.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_CQSIZE;
  return p;
}

}  // namespace

ring::ring(unsigned entries) {
  io_uring_params p = shard_params();
  p.cq_entries = entries * 8;  // multishot ops post many completions per submission
  int rc = io_uring_queue_init_params(entries, &ring_, &p);
  if (rc < 0) throw std::runtime_error(setup_failure(-rc));
  // Registering the ring fd saves an fget/fput on every io_uring_enter.
  io_uring_register_ring_fd(&ring_);
}

ring::~ring() {
  io_uring_queue_exit(&ring_);
}

io_uring_sqe* ring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

int ring::submit_and_wait(unsigned wait_nr) {
  return io_uring_submit_and_wait(&ring_, wait_nr);
}

std::string probe_io_uring() {
  io_uring r{};
  io_uring_params p = shard_params();
  p.cq_entries = 64;
  int rc = io_uring_queue_init_params(8, &r, &p);
  if (rc < 0) return setup_failure(-rc);
  std::string missing;
  io_uring_probe* probe = io_uring_get_probe_ring(&r);
  if (!probe) {
    missing = "io_uring opcode probe failed; mcpgate needs Linux 6.1 or later";
  } else {
    struct need {
      int op;
      const char* name;
    };
    // The opcodes the gateway submits, and only those.
    const need needs[] = {{IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_RECV, "RECV"},
                          {IORING_OP_SEND, "SEND"},       {IORING_OP_CONNECT, "CONNECT"},
                          {IORING_OP_TIMEOUT, "TIMEOUT"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
                          {IORING_OP_READ, "READ"},       {IORING_OP_WRITE, "WRITE"},
                          {IORING_OP_FSYNC, "FSYNC"},     {IORING_OP_POLL_ADD, "POLL_ADD"}};
    for (const need& n : needs) {
      if (!io_uring_opcode_supported(probe, n.op)) {
        missing = std::string("this kernel's io_uring lacks IORING_OP_") + n.name +
                  "; mcpgate needs Linux 6.1 or later";
        break;
      }
    }
    io_uring_free_probe(probe);
  }
  if (missing.empty() && !(p.features & IORING_FEAT_FAST_POLL))
    missing = "this kernel's io_uring lacks FEAT_FAST_POLL; mcpgate needs Linux 6.1 or later";
  io_uring_queue_exit(&r);
  return missing;
}

buffer_ring::buffer_ring(ring& r, uint16_t group, unsigned count, unsigned size)
    : ring_(r), group_(group), size_(size), mask_(io_uring_buf_ring_mask(count)) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768)
    throw std::invalid_argument("buffer_ring: count must be a power of two <= 32768");
  ring_bytes_ = count * sizeof(io_uring_buf);
  void* mem =
      mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("buffer_ring: mmap failed");
  br_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group;
  int rc = io_uring_register_buf_ring(r.raw(), &reg, 0);
  if (rc < 0) {
    munmap(br_, ring_bytes_);
    throw std::runtime_error(std::string("io_uring_register_buf_ring failed: ") +
                             std::strerror(-rc) + "; mcpgate needs Linux 5.19 or later");
  }
  io_uring_buf_ring_init(br_);
  storage_ = static_cast<char*>(std::aligned_alloc(4096, size_t{count} * size));
  if (!storage_) throw std::runtime_error("buffer_ring: out of memory");
  for (unsigned i = 0; i < count; ++i)
    io_uring_buf_ring_add(br_, storage_ + size_t{i} * size, size, static_cast<uint16_t>(i), mask_,
                          static_cast<int>(i));
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
}

buffer_ring::~buffer_ring() {
  io_uring_unregister_buf_ring(ring_.raw(), group_);
  munmap(br_, ring_bytes_);
  std::free(storage_);
}

void buffer_ring::give_back(uint16_t id) {
  io_uring_buf_ring_add(br_, storage_ + size_t{id} * size_, size_, id, mask_, pending_);
  ++pending_;
}

void buffer_ring::publish() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(br_, pending_);
  pending_ = 0;
}

}  // namespace mcpgate::core
