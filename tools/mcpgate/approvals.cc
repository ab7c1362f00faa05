#include "tools/mcpgate/approvals.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxopts.hpp>

#include <simdjson.h>

#include "core/stderr_log.h"
#include "net/address.h"
#include "net/http/parser.h"
#include "policy/json_writer.h"
#include "tools/mcpgate/http_client.h"

namespace mcpgate::tools {
namespace {

constexpr int64_t timeout_ms = 10'000;

int fail(const std::string& why, int code = 1) {
  core::logf(core::log_level::error, "mcpgate approvals: %s", why.c_str());
  return code;
}

// One request on a connection of its own, answered and closed (the admin listener closes
// after every answer).
http_reply request(const net::endpoint& at, const std::string& method, const std::string& path,
                   const std::string& token, const std::string& body) {
  std::string headers = "Accept: application/json\r\n";
  if (!token.empty()) headers += "Authorization: Bearer " + token + "\r\n";
  if (method == "POST") headers += "Content-Type: application/json\r\n";
  return http_request(at, method, path, at.to_string(), headers, body, timeout_ms);
}

// {"error": "..."} as the admin routes answer a refusal, or the body as it is.
std::string error_of(const http_reply& r) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  std::string_view message;
  if (parser.parse(simdjson::padded_string(r.body)).get(e) == simdjson::SUCCESS &&
      e["error"].get(message) == simdjson::SUCCESS)
    return "HTTP " + std::to_string(r.status) + ": " + std::string(message);
  std::string body = r.body;
  while (!body.empty() && body.back() == '\n') body.pop_back();
  return "HTTP " + std::to_string(r.status) + ": " + body;
}

// "90s", "15m", "8h", or milliseconds.
int64_t parse_duration(const std::string& text) {
  size_t used = 0;
  long long n = std::stoll(text, &used);
  std::string unit = text.substr(used);
  int64_t scale = unit.empty() || unit == "ms" ? 1
                  : unit == "s"                ? 1000
                  : unit == "m"                ? 60'000
                  : unit == "h"                ? 3'600'000
                                               : 0;
  if (n < 0 || scale == 0)
    throw std::runtime_error("--for: expected a duration such as 900s, 15m or 8h, got \"" + text +
                             "\"");
  return n * scale;
}

std::string seconds(int64_t ms) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  return s < 120 ? std::to_string(s) + "s"
                 : std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
}

int list(const http_reply& r, bool json) {
  if (json) {
    std::printf("%s\n", r.body.c_str());
    return 0;
  }
  simdjson::dom::parser parser;
  simdjson::dom::array calls;
  if (parser.parse(simdjson::padded_string(r.body)).get(calls) != simdjson::SUCCESS)
    return fail("the admin listener answered /approvals with something that is not a JSON array");
  if (calls.size() == 0) {
    std::printf("no calls are waiting for approval\n");
    return 0;
  }
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::printf("%-27s %-24s %-16s %-12s %-8s %-8s %s\n", "ID", "TOOL", "IDENTITY", "SERVER",
              "WAITING", "LEFT", "ARGUMENTS");
  for (simdjson::dom::element c : calls) {
    std::string_view id, tool, identity, server;
    int64_t held = 0, expires = 0;
    // Fields the gateway always writes; one missing reads as empty (or 0).
    bool whole = c["id"].get(id) == simdjson::SUCCESS && c["tool"].get(tool) == simdjson::SUCCESS;
    whole = c["identity"].get(identity) == simdjson::SUCCESS && whole;
    whole = c["server"].get(server) == simdjson::SUCCESS && whole;
    whole = c["held_at_ms"].get(held) == simdjson::SUCCESS && whole;
    whole = c["expires_at_ms"].get(expires) == simdjson::SUCCESS && whole;
    if (!whole)
      return fail("the admin listener's /approvals lacks a field: " + simdjson::minify(c));
    std::string args = simdjson::minify(c["arguments"]);
    std::printf("%-27.*s %-24.*s %-16.*s %-12.*s %-8s %-8s %s\n", static_cast<int>(id.size()),
                id.data(), static_cast<int>(tool.size()), tool.data(),
                static_cast<int>(identity.size()), identity.data(), static_cast<int>(server.size()),
                server.data(), seconds(now - held).c_str(), seconds(expires - now).c_str(),
                args.c_str());
  }
  return 0;
}

}  // namespace

int approvals_main(const std::vector<std::string>& args) {
  cxxopts::Options o("mcpgate approvals",
                     "Calls held for a human's approval (approve_if), on a running gateway's "
                     "admin listener.\n");
  o.custom_help(
      "list [--json] | approve ID [--for DURATION] | deny ID  --admin HOST:PORT [--by NAME] "
      "[--reason TEXT]\n"
      "  The admin token is read from MCPGATE_ADMIN_TOKEN (not from the command line, where "
      "other users can see it). Exit 0 when done, 1 when the gateway refused, 2 on a usage "
      "error.");
  o.add_options()("admin", "The admin listener, HOST:PORT or http://HOST:PORT",
                  cxxopts::value<std::string>())(
      "by", "Who decides, for the audit log (default: $USER)", cxxopts::value<std::string>())(
      "reason", "Why, for the audit log and the caller", cxxopts::value<std::string>())(
      "for",
      "approve: let the same call (identity, server, tool, arguments) through for this long "
      "(900s, 15m, 8h)",
      cxxopts::value<std::string>())("json", "list: the JSON as the gateway answers it")(
      "verb", "list, approve or deny", cxxopts::value<std::string>())(
      "id", "The held call's id (from list)", cxxopts::value<std::string>())("h,help",
                                                                             "Print this help");
  o.parse_positional({"verb", "id"});
  std::vector<const char*> argv{"mcpgate approvals"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::string verb, id, admin, by, reason;
  int64_t for_ms = 0;
  bool json = false;
  try {
    cxxopts::ParseResult parsed = o.parse(static_cast<int>(argv.size()), argv.data());
    if (parsed.count("help")) {
      std::printf("%s\n", o.help().c_str());
      return 0;
    }
    if (!parsed.unmatched().empty())
      return fail("unexpected argument '" + parsed.unmatched().front() + "'", 2);
    if (!parsed.count("verb")) return fail("say what to do: list, approve ID or deny ID", 2);
    verb = parsed["verb"].as<std::string>();
    if (verb != "list" && verb != "approve" && verb != "deny")
      return fail("unknown action '" + verb + "' (known: list, approve, deny)", 2);
    if (verb != "list" && !parsed.count("id"))
      return fail("name the call: mcpgate approvals " + verb + " ID (see list)", 2);
    if (verb == "list" && parsed.count("id")) return fail("list takes no id", 2);
    if (parsed.count("id")) id = parsed["id"].as<std::string>();
    if (!parsed.count("admin"))
      return fail("name the admin listener: --admin HOST:PORT (the gateway's \"admin\")", 2);
    admin = parsed["admin"].as<std::string>();
    if (parsed.count("by")) by = parsed["by"].as<std::string>();
    if (parsed.count("reason")) reason = parsed["reason"].as<std::string>();
    if (parsed.count("for")) {
      if (verb != "approve") return fail("--for applies to approve only", 2);
      for_ms = parse_duration(parsed["for"].as<std::string>());
    }
    json = parsed.count("json") > 0;
  } catch (const std::exception& e) {
    return fail(e.what(), 2);
  }
  if (admin.rfind("http://", 0) == 0) admin = admin.substr(7);
  while (!admin.empty() && admin.back() == '/') admin.pop_back();
  if (by.empty() && verb != "list") {
    const char* user = std::getenv("USER");
    if (!user || !*user) return fail("say who decides: --by NAME ($USER is not set)", 2);
    by = user;
  }
  const char* token_env = std::getenv("MCPGATE_ADMIN_TOKEN");
  std::string token = token_env ? token_env : "";
  try {
    net::endpoint at = net::parse_host_port(admin, "--admin");
    if (verb == "list") {
      http_reply r = request(at, "GET", "/approvals", token, {});
      if (r.status != 200) return fail(error_of(r));
      return list(r, json);
    }
    std::string body = "{\"by\":";
    policy::append_json_string(body, by);
    if (!reason.empty()) {
      body += ",\"reason\":";
      policy::append_json_string(body, reason);
    }
    if (for_ms > 0) body += ",\"for_ms\":" + std::to_string(for_ms);
    body += "}";
    http_reply r = request(at, "POST", "/approvals/" + id + "/" + verb, token, body);
    if (r.status != 200) return fail(error_of(r));
    std::printf("%s %s\n", id.c_str(), verb == "approve" ? "approved" : "denied");
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // namespace mcpgate::tools
