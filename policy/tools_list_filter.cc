#include "policy/tools_list_filter.h"

#include <utility>
#include <vector>

namespace mcpgate::policy {

namespace {

namespace od = simdjson::ondemand;

// Reads the tool's "name" (keys unescaped; a repeated name key counts as unreadable).
bool read_name(od::object tool, std::string_view* name) {
  int found = 0;
  for (auto field_result : tool) {
    od::field field;
    if (std::move(field_result).get(field)) return false;
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    if (key != "name") continue;
    if (field.value().get_string().get(*name)) return false;
    ++found;
  }
  return found == 1;
}

}  // namespace

bool hidden_from_list(const grant_policy& grant, std::string_view tool, bool hide_denied_tools) {
  if (grant.is_hidden(tool)) return true;
  return hide_denied_tools && grant.denies_unconditionally(tool);
}

bool needs_tools_list_filter(const grant_policy& grant, bool hide_denied_tools) {
  switch (grant.mode) {
    case grant_policy::kind::allow_all:
      return false;
    case grant_policy::kind::no_policy:
      return hide_denied_tools;
    case grant_policy::kind::document:
      break;
  }
  if (grant.doc->hide_all || !grant.doc->hide.empty()) return true;
  if (!hide_denied_tools) return false;
  if (grant.doc->default_for_unlisted == default_verdict::deny) return true;
  for (const auto& [name, rules] : grant.doc->tools) {
    if (rules.denied_unconditionally()) return true;
  }
  return false;
}

namespace {

using tool_span = tools_list_scratch::tool_span;

// Records the tools of one response object's result.tools in `spans`. False when the object is
// malformed in a way the client could read differently (a repeated result or tools key, a tool
// that is not an object).
bool scan_response(od::object top, const char* base, const std::string& padded,
                   const grant_policy& grant, bool hide_denied_tools, const server_pins* pins,
                   std::vector<tool_span>& spans, std::string& canonical,
                   std::vector<tools_list_scratch::pin_notice>& notices, uint32_t& arrays) {
  int results = 0;
  int tools_arrays = 0;
  for (auto top_field_result : top) {
    od::field top_field;
    std::string_view key;
    if (std::move(top_field_result).get(top_field) || top_field.unescaped_key().get(key))
      return false;
    if (key != "result") continue;
    if (++results > 1) return false;
    od::object result;
    if (top_field.value().get_object().get(result)) return false;
    for (auto result_field_result : result) {
      od::field result_field;
      if (std::move(result_field_result).get(result_field) || result_field.unescaped_key().get(key))
        return false;
      if (key != "tools") continue;
      if (++tools_arrays > 1) return false;
      od::array tools;
      if (result_field.value().get_array().get(tools)) return false;
      ++arrays;
      for (auto item_result : tools) {
        od::value item;
        od::object tool;
        std::string_view raw;
        if (std::move(item_result).get(item) || item.get_object().get(tool) ||
            tool.raw_json().get(raw))
          return false;
        size_t begin = static_cast<size_t>(raw.data() - base);
        // raw_json() runs to the start of the next token; the object ends at its last '}'.
        size_t end = begin + raw.size();
        while (end > begin && padded[end - 1] != '}') --end;
        if (end == begin) return false;
        if (tool.reset().error()) return false;
        std::string_view name;
        bool keep = read_name(tool, &name) && !hidden_from_list(grant, name, hide_denied_tools);
        if (keep && pins) {
          pin_check c = pins->check_listed(name, tool, canonical);
          keep = c.keep;
          if (c.first_seen)
            notices.push_back(
                {std::string(name), c.pin->sha256, c.seen, c.readable, pins->on_change()});
        }
        spans.push_back({begin, end, keep, arrays - 1});
      }
    }
  }
  return true;
}

}  // namespace

filter_outcome filter_tools_list(std::string_view body, const grant_policy& grant,
                                 bool hide_denied_tools, tools_list_scratch& scratch,
                                 std::string& out, const server_pins* pins) {
  scratch.notices_.clear();
  std::string& padded = scratch.padded_;
  padded.assign(body);
  padded.append(simdjson::SIMDJSON_PADDING, '\0');
  const char* base = padded.data();

  od::document doc;
  if (scratch.parser_.iterate(base, body.size(), padded.size()).get(doc)) {
    return filter_outcome::invalid;
  }
  auto& spans = scratch.spans_;
  spans.clear();
  uint32_t arrays = 0;
  od::json_type type;
  if (doc.type().get(type)) return filter_outcome::invalid;
  if (type == od::json_type::array) {
    // A batch response (revision 2025-03-26): every response in it is filtered.
    od::array batch;
    if (doc.get_array().get(batch)) return filter_outcome::invalid;
    for (auto element_result : batch) {
      od::value element;
      od::object response;
      if (std::move(element_result).get(element) || element.get_object().get(response) ||
          !scan_response(response, base, padded, grant, hide_denied_tools, pins, spans,
                         scratch.canonical_, scratch.notices_, arrays))
        return filter_outcome::invalid;
    }
  } else {
    od::object top;
    if (doc.get_object().get(top) ||
        !scan_response(top, base, padded, grant, hide_denied_tools, pins, spans, scratch.canonical_,
                       scratch.notices_, arrays))
      return filter_outcome::invalid;
  }
  // A parse error inside a tool the scan read past (a malformed definition checked against
  // its pin) leaves the document dead, and the tools after it unscanned: the body is refused,
  // never forwarded with tools nobody looked at.
  if (!doc.is_alive()) return filter_outcome::invalid;
  // One document only: anything but whitespace after it is an error.
  std::string_view whole;
  doc.rewind();
  if (doc.raw_json().get(whole)) return filter_outcome::invalid;
  {
    size_t end = static_cast<size_t>(whole.data() - base) + whole.size();
    for (size_t i = end; i < body.size(); ++i) {
      char c = body[i];
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return filter_outcome::invalid;
    }
  }

  bool removed = false;
  for (const auto& s : spans) removed = removed || !s.keep;
  if (!removed) return filter_outcome::unchanged;

  // Rebuild: everything outside the tools arrays as it was; inside each array, the kept tools,
  // each preceded by the separator that preceded it originally (the first kept one of its array
  // by none). Offsets are the same in `body` and in the padded copy.
  out.clear();
  size_t copied_to = 0;
  bool kept_in_array = false;
  for (size_t i = 0; i < spans.size(); ++i) {
    const tool_span& s = spans[i];
    bool first_of_array = i == 0 || spans[i - 1].array != s.array;
    if (first_of_array) {
      out.append(body.substr(copied_to, s.begin - copied_to));
      kept_in_array = false;
    }
    if (s.keep) {
      // The separator before this tool: from the end of the previous tool (kept or not).
      if (kept_in_array) out.append(body.substr(spans[i - 1].end, s.begin - spans[i - 1].end));
      out.append(body.substr(s.begin, s.end - s.begin));
      kept_in_array = true;
    }
    copied_to = s.end;
  }
  out.append(body.substr(copied_to));
  return filter_outcome::filtered;
}

}  // namespace mcpgate::policy
