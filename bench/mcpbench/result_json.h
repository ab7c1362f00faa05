#pragma once

// mcpbench's result as JSON, the form bench/compare reads. Latencies are in microseconds with
// three decimals; `percentiles` is the spectrum plotted by bench/compare.

#include <string>

#include "bench/mcpbench/load_generator.h"

namespace mcpgate::bench {

// The percentiles reported in the summary and in the spectrum, in this order.
inline constexpr double summary_percentiles[] = {50, 90, 99, 99.9};
inline constexpr double spectrum_percentiles[] = {0,  10,   25,   50,    75,     90, 95,
                                                  99, 99.5, 99.9, 99.99, 99.999, 100};

// `label` names the run (the target, say); it is written as a JSON string.
std::string result_json(const load_config& config, const load_result& result,
                        std::string_view label);

// One line for a terminal: replies, throughput, p50/p99/max, errors.
std::string result_summary(const load_config& config, const load_result& result);

}  // namespace mcpgate::bench
