#include "net/upstream/stdio/message.h"

namespace mcpgate::net {
namespace {

using simdjson::ondemand::json_type;

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  return s;
}

// An id or progress token, normalised so that equal values compare equal.
std::string key_of(simdjson::ondemand::value v) {
  json_type t;
  if (v.type().get(t)) return {};
  if (t == json_type::string) {
    std::string_view s;
    if (v.get_string().get(s)) return {};
    return "s:" + std::string(s);
  }
  if (t == json_type::number) return "n:" + std::string(trim(v.raw_json_token()));
  return {};
}

}  // namespace

void stdio_message_scanner::scan_object(simdjson::ondemand::object object, stdio_message& m) {
  bool has_id = false, has_method = false, has_outcome = false;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return;
    simdjson::ondemand::value v;
    if (field.value().get(v)) return;
    if (key == "id") {
      std::string_view raw = trim(v.raw_json_token());
      m.id_offset = static_cast<size_t>(raw.data() - padded_.data());
      m.id_length = raw.size();
      m.id_key = key_of(v);
      has_id = !m.id_key.empty();
    } else if (key == "method") {
      std::string_view method;
      if (v.get_string().get(method)) return;
      has_method = true;
      m.initialize = method == "initialize";
    } else if (key == "result" || key == "error") {
      has_outcome = true;
    } else if (key == "params") {
      simdjson::ondemand::object params;
      if (v.get_object().get(params)) continue;
      for (auto pf : params) {
        std::string_view pk;
        if (pf.unescaped_key().get(pk)) break;
        simdjson::ondemand::value pv;
        if (pf.value().get(pv)) break;
        if (pk == "progressToken") {
          m.progress_token = key_of(pv);
        } else if (pk == "requestId") {
          std::string_view raw = trim(pv.raw_json_token());
          m.request_id_offset = static_cast<size_t>(raw.data() - padded_.data());
          m.request_id_length = raw.size();
          m.request_id_key = key_of(pv);
        } else if (pk == "_meta") {
          simdjson::ondemand::object meta;
          if (pv.get_object().get(meta)) continue;
          for (auto mf : meta) {
            std::string_view mk;
            if (mf.unescaped_key().get(mk)) break;
            simdjson::ondemand::value mv;
            if (mf.value().get(mv)) break;
            if (mk == "progressToken") m.progress_token = key_of(mv);
          }
        }
      }
    }
  }
  if (has_method)
    m.what = has_id ? stdio_message::kind::request : stdio_message::kind::notification;
  else if (has_id && has_outcome)
    m.what = stdio_message::kind::response;
}

bool stdio_message_scanner::scan(std::string_view text) {
  messages_.clear();
  batch_ = false;
  padded_.assign(text);
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  simdjson::ondemand::document doc;
  if (parser_.iterate(padded_.data(), text.size(), padded_.size()).get(doc)) return false;
  json_type t;
  if (doc.type().get(t)) return false;
  if (t == json_type::array) {
    batch_ = true;
    simdjson::ondemand::array array;
    if (doc.get_array().get(array)) return false;
    for (auto element : array) {
      simdjson::ondemand::object object;
      if (element.get_object().get(object)) return false;
      scan_object(object, messages_.emplace_back());
    }
  } else if (t == json_type::object) {
    simdjson::ondemand::object object;
    if (doc.get_object().get(object)) return false;
    scan_object(object, messages_.emplace_back());
  } else {
    return false;
  }
  for (const stdio_message& m : messages_)
    if (m.what == stdio_message::kind::invalid) return false;
  return !messages_.empty();
}

}  // namespace mcpgate::net
