#include "core/slot_table.h"

#include <gtest/gtest.h>

namespace mcpgate::core {
namespace {

struct thing {
  uint32_t slot = 0, gen = 0;
  bool live = false;
  int value = 0;
};

TEST(SlotTable, AStaleGenerationFindsNothingOnceTheSlotIsReused) {
  slot_table<thing> t;
  thing& a = t.acquire();
  a.value = 1;
  uint32_t slot = a.slot, gen = a.gen;
  EXPECT_EQ(t.find(slot, gen), &a);
  t.release(a);
  EXPECT_EQ(t.find(slot, gen), nullptr);
  thing& b = t.acquire();
  EXPECT_EQ(b.slot, slot) << "the freed slot is reused";
  EXPECT_EQ(t.find(slot, gen), nullptr) << "the old generation does not find the new object";
  EXPECT_EQ(t.find(b.slot, b.gen), &b);
  EXPECT_EQ(t.live(), 1u);
  t.release(b);
  t.release(b);  // twice is once
  EXPECT_EQ(t.live(), 0u);
}

}  // namespace
}  // namespace mcpgate::core
