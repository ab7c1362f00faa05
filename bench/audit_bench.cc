// The audit path per call: formatting one line (each arguments mode, against a naive
// ostringstream/strftime baseline) and appending it to a log_writer whose writes go through a
// real io_uring to a real file.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iomanip>
#include <sstream>
#include <string>

#include "core/clock.h"
#include "core/log_writer.h"
#include "core/shard.h"
#include "net/observe/audit_record.h"

namespace {

using namespace mcpgate;

const std::string args_json =
    R"({"path":"/home/alice/projects/gateway/src/main.cc","encoding":"utf-8","max_bytes":65536})" +
    std::string(64, '\0');

net::audit_record typical() {
  net::audit_record r;
  r.realtime_ns = 1795622563'123456'789;
  r.shard = 1;
  r.conn = 4242;
  r.req = 123456;
  r.identity = "alice@example.com";
  r.grant = "developers";
  r.session = "4b1e2f0c-9a7d-4c55-8e61-2d7f9b3a6c10";
  r.method = "tools/call";
  r.id = "17";
  r.tool = "read_file";
  r.rule = "allow-read-home";
  r.forwarded = true;
  r.upstream_status = 200;
  r.upstream_us = 850;
  r.gateway_us = 21;
  r.bytes_in = 310;
  r.bytes_out = 2048;
  r.arguments = net::raw_arguments{args_json.data(), args_json.size() - 64};
  return r;
}

void BM_AuditLine(benchmark::State& state) {
  auto mode = static_cast<net::arguments_mode>(state.range(0));
  net::audit_record r = typical();
  std::string out;
  out.reserve(4096);
  for (auto _ : state) {
    out.clear();
    net::append_audit_line(out, r, mode);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(mode == net::arguments_mode::none   ? "none"
                 : mode == net::arguments_mode::keys ? "keys"
                 : mode == net::arguments_mode::hash ? "hash"
                                                     : "full");
}
BENCHMARK(BM_AuditLine)->DenseRange(0, 3);

// What one writes first: an ostringstream per line, gmtime_r + strftime, no escaping of
// anything but quotes, arguments inserted as is.
void BM_AuditLineNaive(benchmark::State& state) {
  net::audit_record r = typical();
  for (auto _ : state) {
    std::ostringstream s;
    time_t secs = static_cast<time_t>(r.realtime_ns / 1'000'000'000);
    tm t{};
    gmtime_r(&secs, &t);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &t);
    s << "{\"ts\":\"" << ts << '.' << std::setw(6) << std::setfill('0')
      << (r.realtime_ns / 1000 % 1'000'000) << "Z\",\"shard\":" << r.shard << ",\"conn\":" << r.conn
      << ",\"req\":" << r.req << ",\"identity\":\"" << *r.identity << "\",\"grant\":\"" << *r.grant
      << "\",\"session\":\"" << *r.session << "\",\"method\":\"" << *r.method
      << "\",\"id\":" << *r.id << ",\"tool\":\"" << *r.tool
      << "\",\"decision\":\"allowed\",\"rule\":\"" << *r.rule
      << "\",\"upstream_status\":" << r.upstream_status << ",\"upstream_us\":" << r.upstream_us
      << ",\"gateway_us\":" << r.gateway_us << ",\"bytes_in\":" << r.bytes_in
      << ",\"bytes_out\":" << r.bytes_out << ",\"args\":" << r.arguments->bytes() << "}\n";
    std::string line = s.str();
    benchmark::DoNotOptimize(line.data());
  }
}
BENCHMARK(BM_AuditLineNaive);

// Format + append per call, with the ring's completions handled every 64 calls as a shard's
// loop would. Bytes go to a real file on /tmp through IORING_OP_WRITE.
void BM_AuditLineAppendAndWrite(benchmark::State& state) {
  char path[] = "/tmp/audit_bench.XXXXXX";
  int tmp = mkstemp(path);
  close(tmp);
  auto file = core::log_file::open(path).file;
  core::ring ring(256);
  core::log_writer writer(ring, file, core::log_writer_options{}, 1);
  net::audit_record r = typical();
  std::string line;
  line.reserve(4096);
  uint64_t n = 0;
  for (auto _ : state) {
    line.clear();
    net::append_audit_line(line, r, net::arguments_mode::hash);
    writer.append(line);
    if (++n % 64 == 0) {
      ring.submit_and_wait(0);
      io_uring_get_events(ring.raw());  // DEFER_TASKRUN: completions are posted only when asked
      ring.drain([&](const io_uring_cqe& cqe) { writer.on_completion(cqe); });
      writer.on_tick(core::monotonic_ns());
    }
  }
  writer.flush_and_close();
  while (writer.busy()) {
    ring.submit_and_wait(1);
    ring.drain([&](const io_uring_cqe& cqe) { writer.on_completion(cqe); });
  }
  state.SetBytesProcessed(static_cast<int64_t>(writer.stats().bytes_written.get()));
  unlink(path);
}
BENCHMARK(BM_AuditLineAppendAndWrite);

}  // namespace
