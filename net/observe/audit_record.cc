#include "net/observe/audit_record.h"

#include "core/stderr_log.h"

#include "policy/json_writer.h"

#include <openssl/evp.h>

#include <simdjson.h>
#include <charconv>

namespace mcpgate::net {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

void append_uint(std::string& out, uint64_t v) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, r.ptr);
}

void append_int(std::string& out, int64_t v) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, r.ptr);
}

// ,"key": as one append of a literal whose length is known at compile time.
template <size_t N>
void append_key(std::string& out, const char (&key_with_punctuation)[N]) {
  out.append(key_with_punctuation, N - 1);
}

void append_string_or_null(std::string& out, const std::optional<std::string_view>& s) {
  if (!s) {
    out += "null";
    return;
  }
  out += '"';
  policy::append_json_string_contents(out, *s);
  out += '"';
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the byte there does not start
// one (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).

// One parser per thread: a shard formats its own lines, and the parser's buffers, once grown,
// are reused for every later line instead of being allocated per call.
simdjson::ondemand::parser& thread_parser() {
  thread_local simdjson::ondemand::parser parser;
  return parser;
}

// Appends ["k1","k2"] for the top-level names of an arguments object. False (and `out`
// unspecified past its old size) when the bytes are not an object.
bool append_argument_keys(std::string& out, const raw_arguments& args) {
  simdjson::ondemand::document doc;
  if (thread_parser()
          .iterate(args.data, args.size, args.size + simdjson::SIMDJSON_PADDING)
          .get(doc)) {
    return false;
  }
  simdjson::ondemand::object object;
  if (doc.get_object().get(object)) return false;
  out += '[';
  bool first = true;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    if (!first) out += ',';
    first = false;
    out += '"';
    policy::append_json_string_contents(out, key);
    out += '"';
  }
  out += ']';
  return true;
}

// OpenSSL 3's one-shot SHA256() looks the algorithm up in the provider tables on every call,
// which costs more than hashing a typical arguments object. The algorithm is fetched once and
// each thread reuses one digest context.
struct sha256_context {
  sha256_context() : md(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx(EVP_MD_CTX_new()) {}
  ~sha256_context() {
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
  }
  sha256_context(const sha256_context&) = delete;
  sha256_context& operator=(const sha256_context&) = delete;
  EVP_MD* md;
  EVP_MD_CTX* ctx;
};

void append_sha256(std::string& out, std::string_view bytes) {
  thread_local sha256_context sha;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!sha.md || !sha.ctx || !EVP_DigestInit_ex(sha.ctx, sha.md, nullptr) ||
      !EVP_DigestUpdate(sha.ctx, bytes.data(), bytes.size()) ||
      !EVP_DigestFinal_ex(sha.ctx, digest, &length)) {
    // Only an OpenSSL without SHA-256 gets here; say so in the line rather than drop it.
    out += "unavailable";
    return;
  }
  out += "sha256:";
  for (unsigned i = 0; i < length; ++i) {
    unsigned char b = digest[i];
    out += hex_digits[b >> 4];
    out += hex_digits[b & 15];
  }
}

}  // namespace

void append_audit_arguments(std::string& out, const std::optional<raw_arguments>& args,
                            arguments_mode mode) {
  if (!args || mode == arguments_mode::none) {
    out += "null";
    return;
  }
  if (mode == arguments_mode::full) {
    // Validated JSON can hold a raw CR or LF only as whitespace between tokens (never inside a
    // string), so turning them into spaces keeps the value and the one-line-per-call promise.
    size_t at = out.size();
    out.append(args->data, args->size);
    for (size_t i = at; i < out.size(); ++i)
      if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
    return;
  }
  size_t start = out.size();
  out += "{\"keys\":";
  if (!append_argument_keys(out, *args)) {
    out.resize(start + 8);  // keep {"keys":
    out += "null";
  }
  if (mode == arguments_mode::hash) {
    out += ",\"sha256\":\"";
    append_sha256(out, args->bytes());
    out += '"';
  }
  out += '}';
}

void append_audit_head(std::string& out, const audit_record& r, arguments_mode mode) {
  out += "{\"ts\":\"";
  core::append_rfc3339_micros(out, r.realtime_ns);
  out += '"';
  append_key(out, ",\"shard\":");
  append_uint(out, r.shard);
  append_key(out, ",\"conn\":");
  append_uint(out, r.conn);
  append_key(out, ",\"req\":");
  append_uint(out, r.req);
  append_key(out, ",\"identity\":");
  append_string_or_null(out, r.identity);
  append_key(out, ",\"grant\":");
  append_string_or_null(out, r.grant);
  if (!r.issuer.empty()) {
    append_key(out, ",\"issuer\":");
    append_string_or_null(out, r.issuer);
  }
  append_key(out, ",\"server\":");
  append_string_or_null(out, r.server);
  append_key(out, ",\"session\":");
  append_string_or_null(out, r.session);
  append_key(out, ",\"method\":");
  append_string_or_null(out, r.method);
  append_key(out, ",\"id\":");
  if (r.id && !r.id->empty()) {
    out += *r.id;
  } else {
    out += "null";
  }
  append_key(out, ",\"tool\":");
  append_string_or_null(out, r.tool);
  append_key(out, ",\"rule\":");
  append_string_or_null(out, r.rule);
  append_key(out, ",\"args\":");
  append_audit_arguments(out, r.arguments, mode);
}

void append_audit_session(std::string& out, std::string_view session) {
  append_key(out, ",\"session\":");
  append_string_or_null(out, session);
}

void append_audit_tail(std::string& out, const audit_record& r) {
  append_key(out, ",\"decision\":");
  out += '"';
  out += call_decision_name(r.decision);
  out += '"';
  if (!r.error.empty()) {
    append_key(out, ",\"error\":\"");
    out += r.error;  // one of a few fixed words, nothing to escape
    out += '"';
  }
  if (!r.approval_id.empty()) {
    append_key(out, ",\"approval\":");
    append_string_or_null(out, r.approval_id);
    if (!r.approval_by.empty()) {
      if (r.approval_granted)
        append_key(out, ",\"approved_by\":");
      else
        append_key(out, ",\"denied_by\":");
      append_string_or_null(out, r.approval_by);
    }
    if (!r.approval_reason.empty()) {
      append_key(out, ",\"approval_reason\":");
      append_string_or_null(out, r.approval_reason);
    }
  }
  if (r.forwarded) {
    append_key(out, ",\"upstream_status\":");
    append_int(out, r.upstream_status);
    append_key(out, ",\"upstream_us\":");
    append_int(out, r.upstream_us);
  }
  append_key(out, ",\"gateway_us\":");
  append_int(out, r.gateway_us);
  append_key(out, ",\"bytes_in\":");
  append_uint(out, r.bytes_in);
  append_key(out, ",\"bytes_out\":");
  append_uint(out, r.bytes_out);
  out += "}\n";
}

void append_tool_change_line(std::string& out, const audit_record& head,
                             const tool_change_record& change) {
  audit_record r = head;
  r.method = "tools/list";
  r.id = std::nullopt;
  r.tool = change.tool;
  r.rule = "pins";
  r.arguments = std::nullopt;
  append_audit_head(out, r, arguments_mode::none);
  append_key(out, ",\"event\":\"tool_changed\",\"pinned_sha256\":");
  append_string_or_null(out, change.pinned_sha256);
  append_key(out, ",\"seen_sha256\":");
  append_string_or_null(
      out, change.seen_sha256.empty() ? std::nullopt : std::optional(change.seen_sha256));
  append_key(out, ",\"action\":");
  append_string_or_null(out, change.action);
  out += "}\n";
}

void append_audit_line(std::string& out, const audit_record& r, arguments_mode mode) {
  append_audit_head(out, r, mode);
  append_audit_tail(out, r);
}

}  // namespace mcpgate::net
