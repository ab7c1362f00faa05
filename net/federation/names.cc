#include "net/federation/names.h"

#include <simdjson.h>

#include "policy/json_writer.h"

namespace mcpgate::net {

bool route_by_name(std::string_view body, std::span<const federated_server> servers,
                   std::string_view separator, routed_call& out, std::string& error) {
  simdjson::padded_string padded(body);
  // The whole document first: On-Demand reads only as far as the name, and a body that is not
  // JSON after it must not go on as if it were.
  simdjson::dom::parser whole;
  simdjson::dom::element ignored;
  if (whole.parse(padded).get(ignored) != simdjson::SUCCESS) {
    error = "Parse error: the request is not one JSON document";
    return false;
  }
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  std::string_view raw;
  std::string_view name;
  error = "Invalid params: params.name must be a string";
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
      doc["params"]["name"].raw_json_token().get(raw) != simdjson::SUCCESS || raw.empty() ||
      raw.front() != '"')
    return false;
  // The token may carry the whitespace after it; the name ends at its closing quote.
  while (!raw.empty() && raw.back() != '"') raw.remove_suffix(1);
  if (raw.size() < 2) return false;
  size_t at = static_cast<size_t>(raw.data() - padded.data());
  doc.rewind();
  if (doc["params"]["name"].get_string().get(name) != simdjson::SUCCESS) return false;
  size_t split = name.find(separator);
  bool found = false;
  if (split != std::string_view::npos && split + separator.size() < name.size())
    for (size_t i = 0; i < servers.size(); ++i)
      if (servers[i].name == name.substr(0, split)) {
        out.server = i;
        found = true;
      }
  if (!found) {
    error = "Invalid params: tool '" + std::string(name) +
            "' names no server of the federated endpoint (its tools and prompts are <server>" +
            std::string(separator) + "<name>)";
    return false;
  }
  out.tool.assign(name.substr(split + separator.size()));
  out.body.assign(body.substr(0, at));
  policy::append_json_string(out.body, out.tool);
  out.body.append(body.substr(at + raw.size()));
  error.clear();
  return true;
}

bool append_prefixed(std::string_view message, std::string_view list, std::string_view server,
                     std::string_view separator, std::string& out, std::string& next_cursor) {
  next_cursor.clear();
  simdjson::padded_string padded(message);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array entries;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS ||
      doc["result"][list].get(entries) != simdjson::SUCCESS)
    return false;
  for (simdjson::dom::element tool : entries) {
    simdjson::dom::object fields;
    std::string_view tool_name;
    if (tool.get(fields) != simdjson::SUCCESS || fields["name"].get(tool_name) != simdjson::SUCCESS)
      continue;
    if (!out.empty()) out += ',';
    out += R"({"name":)";
    std::string prefixed(server);
    prefixed += separator;
    prefixed += tool_name;
    policy::append_json_string(out, prefixed);
    for (auto [key, value] : fields) {
      if (key == "name") continue;
      out += ',';
      policy::append_json_string(out, key);
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
