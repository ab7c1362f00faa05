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

filter_outcome filter_tools_list(std::string_view body, const grant_policy& grant,
                                 bool hide_denied_tools, tools_list_scratch& scratch,
                                 std::string& out) {
  std::string& padded = scratch.padded_;
  padded.assign(body);
  padded.append(simdjson::SIMDJSON_PADDING, '\0');
  const char* base = padded.data();

  od::document doc;
  if (scratch.parser_.iterate(base, body.size(), padded.size()).get(doc)) {
    return filter_outcome::invalid;
  }
  od::object top;
  if (doc.get_object().get(top)) return filter_outcome::invalid;

  auto& spans = scratch.spans_;
  spans.clear();
  int results = 0;
  int tools_arrays = 0;
  for (auto top_field_result : top) {
    od::field top_field;
    std::string_view key;
    if (std::move(top_field_result).get(top_field) || top_field.unescaped_key().get(key)) {
      return filter_outcome::invalid;
    }
    if (key != "result") continue;
    if (++results > 1) return filter_outcome::invalid;
    od::object result;
    if (top_field.value().get_object().get(result)) return filter_outcome::invalid;
    for (auto result_field_result : result) {
      od::field result_field;
      if (std::move(result_field_result).get(result_field) ||
          result_field.unescaped_key().get(key)) {
        return filter_outcome::invalid;
      }
      if (key != "tools") continue;
      if (++tools_arrays > 1) return filter_outcome::invalid;
      od::array tools;
      if (result_field.value().get_array().get(tools)) return filter_outcome::invalid;
      for (auto item_result : tools) {
        od::value item;
        od::object tool;
        std::string_view raw;
        if (std::move(item_result).get(item) || item.get_object().get(tool) ||
            tool.raw_json().get(raw)) {
          return filter_outcome::invalid;
        }
        size_t begin = static_cast<size_t>(raw.data() - base);
        // raw_json() runs to the start of the next token; the object ends at its last '}'.
        size_t end = begin + raw.size();
        while (end > begin && padded[end - 1] != '}') --end;
        if (end == begin) return filter_outcome::invalid;
        if (tool.reset().error()) return filter_outcome::invalid;
        std::string_view name;
        bool keep = read_name(tool, &name) && !hidden_from_list(grant, name, hide_denied_tools);
        spans.push_back({begin, end, keep});
      }
    }
  }
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

  // Rebuild: the bytes before the first tool, the kept tools each preceded by the separator
  // that preceded it originally (the first kept one by none), then the bytes after the last
  // tool. Offsets are the same in `body` and in the padded copy.
  out.clear();
  out.append(body.substr(0, spans.front().begin));
  bool first = true;
  for (size_t i = 0; i < spans.size(); ++i) {
    if (!spans[i].keep) continue;
    if (!first) {
      // The separator before this tool: from the end of the previous tool (kept or not).
      size_t sep_begin = spans[i - 1].end;
      out.append(body.substr(sep_begin, spans[i].begin - sep_begin));
    }
    out.append(body.substr(spans[i].begin, spans[i].end - spans[i].begin));
    first = false;
  }
  out.append(body.substr(spans.back().end));
  return filter_outcome::filtered;
}

}  // namespace mcpgate::policy
