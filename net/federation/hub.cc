#include "net/federation/hub.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <simdjson.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include "core/clock.h"
#include "core/random.h"
#include "core/stderr_log.h"
#include "net/federation/names.h"
#include "net/federation/wire.h"
#include "net/http/writer.h"
#include "policy/json_writer.h"

namespace mcpgate::net {
namespace {

namespace dom = simdjson::dom;

// What the hub tells a client it serves: tools, prompts and resources from every server, and
// their changes.
constexpr std::string_view capabilities =
    R"({"tools":{"listChanged":true},"prompts":{"listChanged":true},)"
    R"("resources":{"listChanged":true,"subscribe":true}})";
constexpr std::string_view latest_revision = "2025-11-25";
// GET streams one session may hold at once (a client needs one; reconnects overlap briefly).
constexpr size_t max_streams_per_session = 4;

bool known_revision(std::string_view v) {
  return v == "2025-03-26" || v == "2025-06-18" || v == "2025-11-25" || v == "2026-07-28";
}

std::string raw_of(dom::element e) {
  return simdjson::minify(e);
}

// A reply the hub makes itself (not a server's, relayed): it tells the shard so (the header is
// the shard's alone; net/exchange/relay.cc strips it), and the shard audits it with `decision`.
void answer(int fd, int status, std::string_view body, std::string_view extra_headers,
            std::string_view decision = "allowed") {
  std::string headers(extra_headers);
  append_header(headers, "Mcp-Gateway-Federation", decision);
  reply_json(fd, status, body, headers);
}

// A GET stream of a client session: the hub's own notifications and every server's GET
// events are written to it, one writer at a time.
struct client_stream {
  int fd = -1;
  std::mutex write_mu;
  bool broken = false;
  // Writes one SSE event (already framed "data: ...\n\n") as a chunk; false once broken.
  bool write_event(std::string_view event) {
    std::lock_guard lock(write_mu);
    if (broken) return false;
    std::string chunk;
    append_chunk(chunk, event);
    if (!send_all(fd, chunk)) broken = true;
    return !broken;
  }
};

struct server_session {
  std::string token;  // the Mcp-Session-Id the server's route gave for this client session
};

struct session {
  std::string id;
  int64_t last_used_ns = 0;  // under the hub's mutex
  std::string identity;
  std::string protocol_version;
  std::string client_capabilities = "{}";  // raw JSON, for the servers' initialize
  std::string client_info = R"({"name":"mcpgate-federation","version":"0"})";
  std::vector<server_session> servers;
  std::vector<std::shared_ptr<client_stream>> streams;  // open GETs
  // Requests a server sent the client (in a call's stream), by raw id: where the client's
  // response goes.
  std::map<std::string, size_t, std::less<>> server_requests;
  // The client's requests in flight, by raw id: where its notifications/cancelled goes.
  std::map<std::string, size_t, std::less<>> in_flight;
};

struct server_health {
  bool up = true;
  uint32_t failures = 0;
  int64_t retry_at_ns = 0;
  std::string last_error;
};

}  // namespace

struct federation_hub::state {
  std::shared_ptr<const federation_config> config;
  int listen_fd = -1;
  federation_stats& stats;
  std::thread acceptor;
  std::mutex mu;  // everything below
  std::condition_variable idle;
  bool stopping = false;
  std::map<int, std::thread> workers;  // by the connection's fd
  std::vector<std::thread> finished;   // joined by the acceptor
  std::map<std::string, std::shared_ptr<session>, std::less<>> sessions;
  std::map<std::string, uint32_t, std::less<>> sessions_of;  // per identity
  std::vector<server_health> health;

  state(std::shared_ptr<const federation_config> c, int fd, federation_stats& st)
      : config(std::move(c)), listen_fd(fd), stats(st), health(config->servers.size()) {}

  void accept_loop();
  void serve(int fd);
  bool handle(int fd, const request& req);  // false: close the connection

  // Requests of the client's session.
  void handle_initialize(int fd, const request& req, dom::element message, std::string_view id);
  // ',"capabilities":...,"serverInfo":...,"instructions":...' of initialize and server/discover.
  void append_description(std::string& out) const;
  // A message of an open session, as handle() parsed it (`id`: its raw id, empty for none).
  void handle_post(int fd, const request& req, std::shared_ptr<session> s, dom::element message,
                   std::string_view id);
  // A list (`method`, whose result holds `list`) of every server that answers, merged.
  void merged_list(int fd, const request& req, session& s, std::string_view method,
                   std::string_view list, std::string_view id);
  // tools/call, prompts/get (by name), resources/read and (un)subscribe (by URI): to the
  // server the prefix names.
  void call_routed(int fd, const request& req, const std::shared_ptr<session>& s,
                   std::string_view body, std::string_view id, federated_key key);
  // `body` to the server's route, the reply relayed; `id` (raw) names the request in a
  // refusal the hub makes itself.
  void forward_to(int fd, const request& req, const std::shared_ptr<session>& s, size_t server,
                  std::string_view body, std::string_view id);
  void handle_get(int fd, const request& req, const std::shared_ptr<session>& s);
  void handle_delete(int fd, const request& req, const std::shared_ptr<session>& s);

  // The server's session for `s`, opened now if need be; empty and `error` set on failure.
  std::string server_token(const request& req, session& s, size_t server, std::string& error,
                           bool renew = false);
  // A request to a server's route, as the client `req` (its credential, its revision).
  bool call_server(const request& req, size_t server, std::string_view token,
                   std::string_view method, std::string_view body, server_reply& reply,
                   std::string& error);
  bool usable(size_t server);
  void mark(size_t server, bool ok, std::string_view why);
  void tell_streams(std::string_view event);
  std::shared_ptr<session> find_session(std::string_view id);
  // Under mu: sessions without a stream and unused for session_idle_timeout_ms are ended (the
  // servers end theirs on their own timeouts).
  void end_idle_sessions();
};

federation_hub::bound_socket federation_hub::bind_socket() {
  return bind_internal_socket("federation", false);
}

federation_hub::federation_hub(std::shared_ptr<const federation_config> config, int listen_fd,
                               federation_stats& stats)
    : s_(std::make_unique<state>(std::move(config), listen_fd, stats)) {}

federation_hub::~federation_hub() {
  stop();
}

void federation_hub::start() {
  s_->acceptor = std::thread([this] { s_->accept_loop(); });
}

void federation_hub::stop() {
  if (!s_ || !s_->acceptor.joinable()) return;
  {
    std::lock_guard lock(s_->mu);
    s_->stopping = true;
    for (auto& [fd, worker] : s_->workers) ::shutdown(fd, SHUT_RDWR);
    for (auto& [id, sess] : s_->sessions)
      for (auto& stream : sess->streams) ::shutdown(stream->fd, SHUT_RDWR);
  }
  ::shutdown(s_->listen_fd, SHUT_RDWR);
  s_->acceptor.join();
  std::unique_lock lock(s_->mu);
  s_->idle.wait(lock, [&] { return s_->workers.empty(); });
  std::vector<std::thread> done = std::move(s_->finished);
  lock.unlock();
  for (std::thread& t : done) t.join();
  ::close(s_->listen_fd);
}

std::string federation_hub::render_metrics(const federation_config& config,
                                           const federation_stats& stats) {
  std::string out =
      "# HELP mcpgate_upstream_up Whether the federated endpoint lists the server's tools (1) or "
      "leaves the server out after a failure (0).\n# TYPE mcpgate_upstream_up gauge\n";
  for (size_t i = 0; i < config.servers.size() && i < stats.count; ++i) {
    out += "mcpgate_upstream_up{server=\"";
    out += config.servers[i].name;
    out += "\"} ";
    out += stats.up[i].load() ? "1\n" : "0\n";
  }
  out +=
      "# HELP mcpgate_federated_sessions Sessions open on the federated endpoint.\n"
      "# TYPE mcpgate_federated_sessions gauge\nmcpgate_federated_sessions ";
  out += std::to_string(stats.sessions.load());
  out += "\n";
  return out;
}

void federation_hub::state::accept_loop() {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    std::vector<std::thread> done;
    {
      std::lock_guard lock(mu);
      done = std::move(finished);
    }
    for (std::thread& t : done) t.join();
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    ucred peer{};
    socklen_t peer_len = sizeof peer;
    bool ours =
        ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) == 0 && peer.pid == ::getpid();
    std::lock_guard lock(mu);
    if (!ours || stopping || workers.size() >= config->max_connections) {
      ::close(fd);
      continue;
    }
    set_timeouts(fd, 0);  // the shards' pooled connections may idle as long as they like
    workers.emplace(fd, std::thread([this, fd] { serve(fd); }));
  }
}

void federation_hub::state::serve(int fd) {
  request_reader reader(fd);
  request req;
  while (reader.next(req) && handle(fd, req)) {
  }
  {
    // Out of the map before the fd is closed: accept may give the number to the next
    // connection at once.
    std::lock_guard lock(mu);
    auto it = workers.find(fd);
    if (it != workers.end()) {
      finished.push_back(std::move(it->second));
      workers.erase(it);
    }
  }
  ::close(fd);
  idle.notify_all();
}

std::shared_ptr<session> federation_hub::state::find_session(std::string_view id) {
  std::lock_guard lock(mu);
  auto it = sessions.find(id);
  if (it == sessions.end()) return nullptr;
  it->second->last_used_ns = core::monotonic_ns();
  return it->second;
}

void federation_hub::state::end_idle_sessions() {
  int64_t now = core::monotonic_ns();
  int64_t idle_ns = config->session_idle_timeout_ms * 1'000'000;
  for (auto it = sessions.begin(); it != sessions.end();) {
    const session& s = *it->second;
    if (!s.streams.empty() || now - s.last_used_ns < idle_ns) {
      ++it;
      continue;
    }
    auto mine = sessions_of.find(s.identity);
    if (mine != sessions_of.end() && --mine->second == 0) sessions_of.erase(mine);
    it = sessions.erase(it);
  }
  stats.sessions.store(sessions.size());
}

bool federation_hub::state::handle(int fd, const request& req) {
  if (req.method == "POST") {
    simdjson::padded_string padded(req.body);
    dom::parser parser;
    dom::element message;
    if (parser.parse(padded).get(message) != simdjson::SUCCESS || !message.is_object()) {
      // The shard's parse stage has read this body already: a batch is what is left.
      answer(fd, 400,
             jsonrpc_error_body({}, -32600,
                                "Invalid Request: the federated endpoint takes one JSON-RPC "
                                "message per POST, not a batch"),
             {}, "invalid");
      return req.keep_alive;
    }
    std::string_view method;
    bool has_method = message["method"].get(method) == simdjson::SUCCESS;
    dom::element id_element;
    std::string id;
    if (message["id"].get(id_element) == simdjson::SUCCESS) id = raw_of(id_element);
    if (has_method && method == "initialize") {
      handle_initialize(fd, req, message, id);
      return req.keep_alive;
    }
    if (has_method && method == "server/discover") {
      // The revisions it serves, so that a 2026-07-28 client knows to initialize.
      std::string body = R"({"jsonrpc":"2.0","id":)";
      body += id.empty() ? std::string_view("null") : std::string_view(id);
      body += R"(,"result":{"supportedVersions":["2025-11-25","2025-06-18","2025-03-26"])";
      append_description(body);
      body += "}}";
      answer(fd, 200, body, {});
      return req.keep_alive;
    }
    if (req.protocol_version == "2026-07-28") {
      // Stateless requests (no initialize, no session) are served by each server's own route.
      answer(fd, 400,
             jsonrpc_error_body(id, -32600,
                                "Bad Request: the federated endpoint serves the revisions with "
                                "sessions (2025-03-26 to 2025-11-25); send 2026-07-28 requests to "
                                "a server's own endpoint, /mcp/<server>"),
             {}, "invalid");
      return req.keep_alive;
    }
    if (req.session.empty()) {
      answer(fd, 400,
             jsonrpc_error_body(id, -32600, "Bad Request: Mcp-Session-Id header is required"), {},
             "invalid");
      return req.keep_alive;
    }
    std::shared_ptr<session> s = find_session(req.session);
    if (!s) {
      answer(fd, 404, jsonrpc_error_body(id, -32001, "Session not found"), {}, "invalid");
      return req.keep_alive;
    }
    handle_post(fd, req, s, message, id);
    return req.keep_alive;
  }
  if (req.method == "GET" || req.method == "DELETE") {
    std::shared_ptr<session> s = req.session.empty() ? nullptr : find_session(req.session);
    if (!s) {
      answer(
          fd, req.session.empty() ? 400 : 404,
          jsonrpc_error_body({}, req.session.empty() ? -32600 : -32001,
                             req.session.empty() ? "Bad Request: Mcp-Session-Id header is required"
                                                 : "Session not found"),
          {}, "invalid");
      return req.keep_alive;
    }
    if (req.method == "GET") {
      handle_get(fd, req, s);
      return false;  // a stream ends its connection
    }
    handle_delete(fd, req, s);
    return req.keep_alive;
  }
  answer(fd, 405, {}, "Allow: GET, POST, DELETE\r\n", "invalid");
  return req.keep_alive;
}

void federation_hub::state::append_description(std::string& out) const {
  out += R"(,"capabilities":)";
  out += capabilities;
  out +=
      R"(,"serverInfo":{"name":"mcpgate","title":"mcpgate federated endpoint","version":"0.1.0"},)";
  out += R"("instructions":"Tools and prompts of several MCP servers, each named <server>)";
  out += config->separator;
  out += R"(<name>; their resources as mcp-federated://<server>/<uri>.")";
}

void federation_hub::state::handle_initialize(int fd, const request& req, dom::element message,
                                              std::string_view id) {
  auto s = std::make_shared<session>();
  s->identity = req.identity;
  s->servers.resize(config->servers.size());
  std::string_view requested;
  dom::element params;
  if (message["params"].get(params) == simdjson::SUCCESS && params.is_object()) {
    if (params["protocolVersion"].get(requested) != simdjson::SUCCESS) requested = {};
    dom::element e;
    if (params["capabilities"].get(e) == simdjson::SUCCESS && e.is_object())
      s->client_capabilities = raw_of(e);
    if (params["clientInfo"].get(e) == simdjson::SUCCESS && e.is_object())
      s->client_info = raw_of(e);
  }
  s->protocol_version = known_revision(requested) ? std::string(requested) : latest_revision;
  {
    std::lock_guard lock(mu);
    end_idle_sessions();
    uint32_t& mine = sessions_of[s->identity];
    if (sessions.size() >= config->max_sessions || mine >= config->max_sessions_per_identity) {
      std::string why = sessions.size() >= config->max_sessions
                            ? "the federated endpoint holds its maximum of " +
                                  std::to_string(config->max_sessions) + " sessions"
                            : "this identity holds its maximum of " +
                                  std::to_string(config->max_sessions_per_identity) +
                                  " sessions on the federated endpoint; end one with DELETE";
      answer(fd, 503, jsonrpc_error_body(id, -32000, "Service Unavailable: " + why), {});
      return;
    }
    ++mine;
    s->last_used_ns = core::monotonic_ns();
    s->id = core::random_hex(16);
    sessions[s->id] = s;
    stats.sessions.store(sessions.size());
  }
  std::string body = R"({"jsonrpc":"2.0","id":)";
  body += id.empty() ? std::string_view("null") : id;
  body += R"(,"result":{"protocolVersion":)";
  policy::append_json_string(body, s->protocol_version);
  append_description(body);
  body += "}}";
  answer(fd, 200, body, "Mcp-Session-Id: " + s->id + "\r\n");
}

void federation_hub::state::handle_post(int fd, const request& req, std::shared_ptr<session> s,
                                        dom::element message, std::string_view id) {
  std::string_view body = req.body;
  std::string_view method;
  bool has_method = message["method"].get(method) == simdjson::SUCCESS;
  bool has_id = !id.empty();

  if (!has_method) {
    // The client answers a server's request: to the server that asked.
    std::optional<size_t> server;
    {
      std::lock_guard lock(mu);
      auto it = s->server_requests.find(id);
      if (it != s->server_requests.end()) {
        server = it->second;
        s->server_requests.erase(it);
      }
    }
    if (!server) {
      answer(fd, 400,
             jsonrpc_error_body(
                 {}, -32600,
                 "Invalid Request: no server of this session asked for id " + std::string(id)),
             {}, "invalid");
      return;
    }
    forward_to(fd, req, s, *server, body, id);
    return;
  }
  if (method == "ping" && has_id) {
    answer(fd, 200, R"({"jsonrpc":"2.0","id":)" + std::string(id) + R"(,"result":{}})", {});
    return;
  }
  std::string_view list = method == "tools/list"                 ? "tools"
                          : method == "prompts/list"             ? "prompts"
                          : method == "resources/list"           ? "resources"
                          : method == "resources/templates/list" ? "resourceTemplates"
                                                                 : "";
  if (!list.empty() && has_id) {
    merged_list(fd, req, *s, method, list, id);
    return;
  }
  if ((method == "tools/call" || method == "prompts/get") && has_id) {
    call_routed(fd, req, s, body, id, federated_key::name);
    return;
  }
  if ((method == "resources/read" || method == "resources/subscribe" ||
       method == "resources/unsubscribe") &&
      has_id) {
    call_routed(fd, req, s, body, id, federated_key::uri);
    return;
  }
  if (!has_id) {
    // Notifications: a cancellation goes where its request went; the rest are the hub's.
    if (method == "notifications/cancelled") {
      dom::element request_id;
      std::optional<size_t> server;
      if (message["params"]["requestId"].get(request_id) == simdjson::SUCCESS) {
        std::lock_guard lock(mu);
        auto it = s->in_flight.find(raw_of(request_id));
        if (it != s->in_flight.end()) server = it->second;
      }
      if (server) {
        forward_to(fd, req, s, *server, body, id);
        return;
      }
    } else if (method != "notifications/initialized") {
      // Every other notification of the client's (roots/list_changed, ...) concerns every
      // server it has a session with.
      for (size_t i = 0; i < config->servers.size(); ++i) {
        std::string token;
        {
          std::lock_guard lock(mu);
          token = s->servers[i].token;
        }
        server_reply reply;
        std::string error;
        if (!token.empty() && usable(i) && call_server(req, i, token, "POST", body, reply, error))
          reply.close();
      }
    }
    answer(fd, 202, {}, {});
    return;
  }
  answer(fd, 200,
         jsonrpc_error_body(
             id, -32601,
             "Method not found: the federated endpoint serves tools, prompts and resources; use " +
                 std::string("/mcp/<server> for ") + std::string(method)),
         {}, "invalid");
}

bool federation_hub::state::usable(size_t server) {
  std::lock_guard lock(mu);
  const server_health& h = health[server];
  return h.up || core::monotonic_ns() >= h.retry_at_ns;
}

void federation_hub::state::mark(size_t server, bool ok, std::string_view why) {
  const std::string& name = config->servers[server].name;
  bool changed = false;
  {
    std::lock_guard lock(mu);
    server_health& h = health[server];
    if (ok) {
      changed = !h.up;
      h.up = true;
      h.failures = 0;
    } else {
      changed = h.up;
      h.up = false;
      int64_t backoff_ms = config->retry_min_ms;
      for (uint32_t i = 0; i < h.failures && backoff_ms < config->retry_max_ms; ++i)
        backoff_ms *= 2;
      if (backoff_ms > config->retry_max_ms) backoff_ms = config->retry_max_ms;
      ++h.failures;
      h.retry_at_ns = core::monotonic_ns() + backoff_ms * 1'000'000;
      h.last_error = why;
      if (changed || h.failures <= 1)
        core::logf(core::log_level::warn,
                   "mcpgate: federation: server '%s' is down (%.*s): left out of tools/list, "
                   "retried in %lld ms",
                   name.c_str(), static_cast<int>(why.size()), why.data(),
                   static_cast<long long>(backoff_ms));
    }
    stats.up[server].store(h.up ? 1 : 0);
  }
  if (!changed) return;
  if (ok)
    core::logf(core::log_level::info, "mcpgate: federation: server '%s' is back in tools/list",
               name.c_str());
  tell_streams(
      "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":"
      "\"notifications/tools/list_changed\"}\n\n");
}

void federation_hub::state::tell_streams(std::string_view event) {
  std::vector<std::shared_ptr<client_stream>> all;
  {
    std::lock_guard lock(mu);
    for (auto& [id, s] : sessions)
      for (auto& stream : s->streams) all.push_back(stream);
  }
  for (auto& stream : all) stream->write_event(event);
}

bool federation_hub::state::call_server(const request& req, size_t server, std::string_view token,
                                        std::string_view method, std::string_view body,
                                        server_reply& reply, std::string& error) {
  server_request r;
  r.method = method;
  r.path = config->servers[server].path;
  r.host = config->host_header;
  r.authorization = req.authorization;
  r.session = token;
  r.protocol_version = req.protocol_version;
  // The merged stream's event ids mean nothing to one server: no Last-Event-ID.
  r.body = body;
  return open_server_request(config->gateway, config->request_timeout_ms, r, reply, error);
}

std::string federation_hub::state::server_token(const request& req, session& s, size_t server,
                                                std::string& error, bool renew) {
  {
    std::lock_guard lock(mu);
    if (!renew && !s.servers[server].token.empty()) return s.servers[server].token;
  }
  std::string init = R"({"jsonrpc":"2.0","id":"mcpgate-init","method":"initialize","params":{)";
  init += R"("protocolVersion":)";
  policy::append_json_string(init, s.protocol_version);
  init += R"(,"capabilities":)";
  init += s.client_capabilities;
  init += R"(,"clientInfo":)";
  init += s.client_info;
  init += "}}";
  server_reply reply;
  request as = req;
  as.protocol_version.clear();  // not yet negotiated with this server
  if (!call_server(as, server, {}, "POST", init, reply, error)) return {};
  std::string message;
  if (!reply.read_message(message, error)) return {};
  if (reply.status != 200) {
    error = "initialize: HTTP " + std::to_string(reply.status) + ": " + message.substr(0, 200);
    return {};
  }
  std::string token = reply.session;
  reply.close();
  if (token.empty()) {
    error = "initialize: the server's route gave no Mcp-Session-Id";
    return {};
  }
  server_reply done;
  std::string ignored;
  as.protocol_version = s.protocol_version;
  if (call_server(as, server, token, "POST",
                  R"({"jsonrpc":"2.0","method":"notifications/initialized"})", done, ignored))
    done.close();
  std::lock_guard lock(mu);
  s.servers[server].token = token;
  return token;
}

void federation_hub::state::merged_list(int fd, const request& req, session& s,
                                        std::string_view method, std::string_view list,
                                        std::string_view id) {
  std::string tools;
  for (size_t i = 0; i < config->servers.size(); ++i) {
    if (!usable(i)) continue;
    const std::string& name = config->servers[i].name;
    std::string error;
    bool down = false;
    bool listed = false;
    std::string cursor;
    std::string page_tools;
    for (int renew = 0; renew < 2 && !listed && !down; ++renew) {
      page_tools.clear();
      cursor.clear();
      std::string token = server_token(req, s, i, error, renew == 1);
      if (token.empty()) {
        down = true;
        break;
      }
      // Every page of the server's list (bounded: a server paging for ever is cut off).
      for (int page = 0; page < 100; ++page) {
        std::string body = R"({"jsonrpc":"2.0","id":"mcpgate-list","method":")";
        body += method;
        body += '"';
        if (!cursor.empty()) {
          body += R"(,"params":{"cursor":)";
          policy::append_json_string(body, cursor);
          body += "}";
        }
        body += "}";
        server_reply reply;
        if (!call_server(req, i, token, "POST", body, reply, error)) {
          down = true;
          break;
        }
        std::string message;
        if (!reply.read_message(message, error)) {
          down = true;
          break;
        }
        if (reply.status != 200) {
          error = "HTTP " + std::to_string(reply.status) + ": " + message.substr(0, 200);
          // A server that restarted answers 404 (or 400) for the session it forgot: once
          // more on a new one; anything else, or the same again, leaves it out.
          if (reply.status >= 500 || renew == 1) down = true;
          break;
        }
        // An error (a server without tools) or no list: nothing of this server's.
        std::string next;
        if (!append_prefixed(message, list, name, config->separator, page_tools, next) ||
            next.empty()) {
          listed = true;
          break;
        }
        cursor = next;
      }
    }
    if (down || !listed) {
      mark(i, false, error.empty() ? "its session could not be opened" : error);
      continue;
    }
    mark(i, true, {});
    if (page_tools.empty()) continue;
    if (!tools.empty()) tools += ',';
    tools += page_tools;
  }
  std::string body = R"({"jsonrpc":"2.0","id":)";
  body += id;
  body += R"(,"result":{")";
  body += list;
  body += R"(":[)";
  body += tools;
  body += "]}}";
  answer(fd, 200, body, {});
}

void federation_hub::state::call_routed(int fd, const request& req,
                                        const std::shared_ptr<session>& s, std::string_view body,
                                        std::string_view id, federated_key key) {
  routed_call routed;
  std::string error;
  if (!route_request(body, key, config->servers, config->separator, routed, error)) {
    answer(fd, 200, jsonrpc_error_body(id, -32602, error), {}, "invalid");
    return;
  }
  {
    std::lock_guard lock(mu);
    s->in_flight[std::string(id)] = routed.server;
  }
  forward_to(fd, req, s, routed.server, routed.body, id);
  std::lock_guard lock(mu);
  s->in_flight.erase(std::string(id));
}

void federation_hub::state::forward_to(int fd, const request& req,
                                       const std::shared_ptr<session>& s, size_t server,
                                       std::string_view body, std::string_view id) {
  const std::string& name = config->servers[server].name;
  auto unavailable = [&](const std::string& why) {
    answer(
        fd, 200,
        jsonrpc_error_body(
            id, -32002, "server '" + name + "' of the federated endpoint is unavailable: " + why),
        {}, "upstream_error");
  };
  if (!usable(server)) {
    std::string why;
    {
      std::lock_guard lock(mu);
      why = health[server].last_error;
    }
    unavailable(why + " (retried later; not sent)");
    return;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string error;
    std::string token = server_token(req, *s, server, error, attempt == 1);
    if (token.empty()) {
      mark(server, false, error);
      unavailable(error + " (not sent)");
      return;
    }
    server_reply reply;
    if (!call_server(req, server, token, "POST", body, reply, error)) {
      // Not connected, or the request not written whole: the gateway did not take it.
      mark(server, false, error);
      unavailable(error);
      return;
    }
    // A 404 (or, from some servers, a 400) for the session: the message was refused before
    // anything ran, as a server that restarted refuses the session it forgot; once more with
    // a new session.
    if ((reply.status == 404 || reply.status == 400) && attempt == 0) {
      std::string ignored;
      std::string message;
      reply.read_message(message, ignored);
      continue;
    }
    if (reply.status >= 502 && reply.status <= 504) mark(server, false, reply.reason);
    // Relayed as it comes: a JSON body whole, an event stream event by event (progress, and
    // the server's requests, whose ids are noted for the client's answers).
    reply.relay(fd, [&](std::string_view data) {
      simdjson::padded_string event(data);
      dom::parser p;
      dom::element m;
      std::string_view method;
      dom::element rid;
      if (p.parse(event).get(m) == simdjson::SUCCESS &&
          m["method"].get(method) == simdjson::SUCCESS && m["id"].get(rid) == simdjson::SUCCESS) {
        std::lock_guard lock(mu);
        if (s->server_requests.size() < 1024) s->server_requests[raw_of(rid)] = server;
      }
    });
    return;
  }
  unavailable("the server's route did not take its session twice");
}

void federation_hub::state::handle_get(int fd, const request& req,
                                       const std::shared_ptr<session>& s) {
  auto stream = std::make_shared<client_stream>();
  stream->fd = fd;
  {
    std::lock_guard lock(mu);
    if (s->streams.size() < max_streams_per_session)
      s->streams.push_back(stream);
    else
      stream->broken = true;
  }
  if (stream->broken) {
    answer(fd, 409,
           jsonrpc_error_body({}, -32000,
                              "Conflict: this session holds its maximum of " +
                                  std::to_string(max_streams_per_session) +
                                  " GET streams on the federated endpoint"),
           {}, "invalid");
    return;
  }
  std::string head;
  append_status_line(head, 200);
  append_header(head, "Content-Type", "text/event-stream");
  append_header(head, "Cache-Control", "no-cache");
  append_header(head, "Transfer-Encoding", "chunked");
  head += "\r\n";
  if (!send_all(fd, head)) {
    std::lock_guard lock(mu);
    std::erase(s->streams, stream);
    return;
  }
  // Every server's own GET stream, merged into this one.
  std::vector<std::thread> readers;
  std::vector<int> server_fds;
  bool closing = false;  // under fds_mu: a reader that connects after this gives up at once
  std::mutex fds_mu;
  for (size_t i = 0; i < config->servers.size(); ++i) {
    if (!usable(i)) continue;
    readers.emplace_back([this, &req, &s, stream, i, &server_fds, &fds_mu, &closing] {
      std::string error;
      std::string token = server_token(req, *s, i, error);
      if (token.empty()) return;
      server_reply reply;
      if (!call_server(req, i, token, "GET", {}, reply, error)) return;
      {
        std::lock_guard lock(fds_mu);
        if (closing) return;
        server_fds.push_back(reply.fd());
      }
      if (reply.status != 200) return;
      reply.for_each_event([&](std::string_view block) { return stream->write_event(block); });
    });
  }
  // Until the shard closes the connection (the client left) or the hub stops.
  char byte;
  while (::recv(fd, &byte, 1, 0) > 0) {
  }
  {
    std::lock_guard lock(fds_mu);
    closing = true;
    for (int sfd : server_fds) ::shutdown(sfd, SHUT_RDWR);
  }
  {
    std::lock_guard lock(stream->write_mu);
    stream->broken = true;
  }
  for (std::thread& t : readers) t.join();
  std::lock_guard lock(mu);
  std::erase(s->streams, stream);
}

void federation_hub::state::handle_delete(int fd, const request& req,
                                          const std::shared_ptr<session>& s) {
  for (size_t i = 0; i < config->servers.size(); ++i) {
    std::string token;
    {
      std::lock_guard lock(mu);
      token = s->servers[i].token;
    }
    if (token.empty()) continue;
    server_reply reply;
    std::string error;
    if (call_server(req, i, token, "DELETE", {}, reply, error)) reply.close();
  }
  {
    std::lock_guard lock(mu);
    if (sessions.erase(s->id)) {
      auto it = sessions_of.find(s->identity);
      if (it != sessions_of.end() && --it->second == 0) sessions_of.erase(it);
    }
    stats.sessions.store(sessions.size());
    for (auto& stream : s->streams) ::shutdown(stream->fd, SHUT_RDWR);
  }
  answer(fd, 200, {}, {});
}

}  // namespace mcpgate::net
