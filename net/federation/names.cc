#include "net/federation/names.h"

#include <simdjson.h>

#include "policy/json_writer.h"

namespace mcpgate::net {
namespace {

// The server named by `value`'s prefix, and the rest: the server's own name or URI.
bool split_prefixed(std::string_view value, federated_key key,
                    std::span<const federated_server> servers, std::string_view separator,
                    size_t& server, std::string_view& rest) {
  std::string_view prefix;
  if (key == federated_key::name) {
    size_t split = value.find(separator);
    if (split == std::string_view::npos) return false;
    prefix = value.substr(0, split);
    rest = value.substr(split + separator.size());
  } else {
    if (!value.starts_with(federated_uri_prefix)) return false;
    value.remove_prefix(federated_uri_prefix.size());
    size_t slash = value.find('/');
    if (slash == std::string_view::npos) return false;
    prefix = value.substr(0, slash);
    rest = value.substr(slash + 1);
  }
  if (rest.empty()) return false;
  for (size_t i = 0; i < servers.size(); ++i)
    if (servers[i].name == prefix) {
      server = i;
      return true;
    }
  return false;
}

}  // namespace

bool route_request(std::string_view body, federated_key key,
                   std::span<const federated_server> servers, std::string_view separator,
                   routed_call& out, std::string& error) {
  const char* member = key == federated_key::name ? "name" : "uri";
  simdjson::padded_string padded(body);
  // The whole document first: On-Demand reads only as far as the member, and a body that is
  // not JSON after it must not go on as if it were.
  simdjson::dom::parser whole;
  simdjson::dom::element ignored;
  if (whole.parse(padded).get(ignored) != simdjson::SUCCESS) {
    error = "Parse error: the request is not one JSON document";
    return false;
  }
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  std::string_view raw;
  std::string_view value;
  error = std::string("Invalid params: params.") + member + " must be a string";
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
      doc["params"][member].raw_json_token().get(raw) != simdjson::SUCCESS || raw.empty() ||
      raw.front() != '"')
    return false;
  // The token may carry the whitespace after it; the string ends at its closing quote.
  while (!raw.empty() && raw.back() != '"') raw.remove_suffix(1);
  if (raw.size() < 2) return false;
  size_t at = static_cast<size_t>(raw.data() - padded.data());
  doc.rewind();
  if (doc["params"][member].get_string().get(value) != simdjson::SUCCESS) return false;
  std::string_view rest;
  if (!split_prefixed(value, key, servers, separator, out.server, rest)) {
    error = key == federated_key::name
                ? "Invalid params: '" + std::string(value) +
                      "' names no server of the federated endpoint (its tools and prompts are "
                      "<server>" +
                      std::string(separator) + "<name>)"
                : "Invalid params: '" + std::string(value) +
                      "' names no server of the federated endpoint (its resources are " +
                      std::string(federated_uri_prefix) + "<server>/<uri>)";
    return false;
  }
  out.tool.assign(rest);
  out.body.assign(body.substr(0, at));
  policy::append_json_string(out.body, out.tool);
  out.body.append(body.substr(at + raw.size()));
  error.clear();
  return true;
}

bool append_prefixed(std::string_view message, std::string_view list, std::string_view server,
                     std::string_view separator, std::string& out, std::string& next_cursor) {
  next_cursor.clear();
  std::string_view key = list == "resources"           ? "uri"
                         : list == "resourceTemplates" ? "uriTemplate"
                                                       : "name";
  std::string prefix;
  if (key == "name") {
    prefix.assign(server);
    prefix += separator;
  } else {
    prefix.assign(federated_uri_prefix);
    prefix += server;
    prefix += '/';
  }
  simdjson::padded_string padded(message);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array entries;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS ||
      doc["result"][list].get(entries) != simdjson::SUCCESS)
    return false;
  for (simdjson::dom::element entry : entries) {
    simdjson::dom::object fields;
    std::string_view named;
    if (entry.get(fields) != simdjson::SUCCESS || fields[key].get(named) != simdjson::SUCCESS)
      continue;
    if (!out.empty()) out += ',';
    out += '{';
    policy::append_json_string(out, key);
    out += ':';
    policy::append_json_string(out, prefix + std::string(named));
    for (auto [member, value] : fields) {
      if (member == key) continue;
      out += ',';
      policy::append_json_string(out, member);
      out += ':';
      out += simdjson::minify(value);
    }
    out += '}';
  }
  std::string_view next;
  if (doc["result"]["nextCursor"].get(next) == simdjson::SUCCESS) next_cursor = next;
  return true;
}

}  // namespace mcpgate::net
