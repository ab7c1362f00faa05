#include "policy/engine.h"

#include "policy/json_writer.h"

namespace mcpgate::policy {

namespace {

void deny(decision& d, std::string_view rule, std::string_view message = {}) {
  d.outcome = verdict::denied;
  d.rule = rule;
  d.message = message;
}

void roll_back(decision& d) {
  for (uint8_t i = 0; i < d.reservation_count; ++i) {
    d.reservations[i].counter->refund(d.reservations[i].taken);
    d.reservations[i] = reservation{};
  }
  d.reservation_count = 0;
}

}  // namespace

std::string_view verdict_name(verdict v) {
  switch (v) {
    case verdict::allowed:
      return "allowed";
    case verdict::denied:
      return "denied";
    case verdict::rate_limited:
      return "rate_limited";
    case verdict::held:
      return "held";
    case verdict::approval_denied:
      return "approval_denied";
    case verdict::approval_timeout:
      return "approval_timeout";
  }
  return "denied";
}

decision decide(const subject& who, const call& what, int64_t now_ns, decide_scratch& scratch) {
  // One decision object and every path returns it, so it is built in place (NRVO) rather
  // than moved: it carries the reservations array.
  decision d;
  d.tool = what.tool;
  if (what.method != "tools/call") return d;
  if (who.who == nullptr || who.who->grant == nullptr) {
    deny(d, "identity");
    return d;
  }
  const grant_policy& grant = who.who->grant->for_server(who.server);
  switch (grant.mode) {
    case grant_policy::kind::allow_all:
      return d;
    case grant_policy::kind::no_policy:
      deny(d, "grant");
      return d;
    case grant_policy::kind::document:
      break;
  }
  if (grant.is_hidden(what.tool)) {
    deny(d, "hide");
    return d;
  }

  const compiled_tool* tool = nullptr;
  if (auto it = grant.tools.find(what.tool); it != grant.tools.end()) {
    tool = &it->second;
  } else if (grant.doc->default_for_unlisted == default_verdict::deny) {
    deny(d, "default");
    return d;
  } else {
    tool = &grant.unlisted;
  }

  if (const tool_rules* rules = tool->rules) {
    argument_reader& args = scratch.args_;
    args.reset(what.arguments_json);
    for (size_t i = 0; i < rules->require.size(); ++i) {
      if (!rules->require[i].check.holds(args)) {
        if (args.invalid() || args.ambiguous()) {
          deny(d, "arguments");
        } else {
          deny(d, tool->require_names[i], rules->require[i].on_deny);
        }
        return d;
      }
    }
    for (size_t i = 0; i < rules->deny_if.size(); ++i) {
      if (all_hold(rules->deny_if[i].conditions, args)) {
        deny(d, tool->deny_names[i], rules->deny_if[i].on_deny);
        return d;
      }
    }
    const approval_rule* held = nullptr;
    std::string_view held_rule;
    if (!what.approved) {
      for (size_t i = 0; i < rules->approve_if.size() && !held; ++i) {
        if (all_hold(rules->approve_if[i].conditions, args)) {
          held = &rules->approve_if[i];
          held_rule = tool->approve_names[i];
        }
      }
    }
    // A condition that read a duplicated key or unparseable arguments may have been
    // evaluated against a value the server will not use; refuse rather than guess.
    if (args.invalid() || args.ambiguous()) {
      deny(d, "arguments");
      return d;
    }
    if (held) {
      d.outcome = verdict::held;
      d.rule = held_rule;
      d.message = held->message;
      d.approval = held;
      return d;
    }
  }

  for (const limit_binding& binding : tool->limits) {
    reservation& r = d.reservations[d.reservation_count];
    if (binding.counter != nullptr) {
      r.counter = binding.counter;
    } else if (binding.sessions != nullptr) {
      // Keyed by identity too, so a replayed session id cannot spend someone else's quota.
      std::string& key = scratch.session_key_;
      key.assign(who.who->name);
      key.push_back('\0');
      key.append(who.session_id);
      r.session_owner = binding.sessions->find_or_create(key);
      r.counter = r.session_owner.get();
      if (!r.counter) {
        // This identity already holds as many session counters as it may: no new session's
        // calls count until idle ones are swept (once a minute).
        r = reservation{};
        roll_back(d);
        d.outcome = verdict::rate_limited;
        d.rule = "limits.max_session_counters_per_identity";
        d.window = binding.rule->window;
        d.max = binding.rule->max;
        d.retry_after_ms = 60'000;
        return d;
      }
    } else {
      r.counter = who.who->counters[grant.identity_slot_base + binding.identity_slot];
    }
    r.taken = r.counter->try_admit(now_ns);
    if (!r.taken.admitted) {
      const int64_t retry_after_ns = r.taken.retry_after_ns;
      r = reservation{};
      roll_back(d);
      d.outcome = verdict::rate_limited;
      d.rule = binding.rule->counter;
      d.window = binding.rule->window;
      d.max = binding.rule->max;
      d.retry_after_ms = (retry_after_ns + 999'999) / 1'000'000;
      return d;
    }
    ++d.reservation_count;
  }
  return d;
}

void refund(const decision& allowed) {
  for (uint8_t i = 0; i < allowed.reservation_count; ++i) {
    allowed.reservations[i].counter->refund(allowed.reservations[i].taken);
  }
}

void append_message(std::string& out, const decision& d) {
  if (!d.message.empty()) {
    out.append(d.message);
    return;
  }
  out += "tool '";
  out.append(d.tool);
  if (d.outcome == verdict::rate_limited) {
    out += "' exceeded limit '";
    out.append(d.rule);
    out += "' (";
    append_json_int(out, d.max);
    out += " per ";
    out += window_name(d.window);
    out += "); retry after ";
    append_json_int(out, d.retry_after_ms);
    out += " ms";
    return;
  }
  out += "' denied by policy rule '";
  out.append(d.rule);
  out += "'";
  if (d.rule == "hide") {
    out += " (hidden tool)";
  } else if (d.rule == "default") {
    out += " (not listed; default is deny)";
  } else if (d.rule == "grant") {
    out += " (the grant has no policy)";
  } else if (d.rule == "identity") {
    out += " (no authenticated identity)";
  } else if (d.rule == "arguments") {
    out += " (arguments are not valid JSON or repeat a key the policy reads)";
  }
}

std::string default_message(const decision& d) {
  std::string out;
  append_message(out, d);
  return out;
}

}  // namespace mcpgate::policy
