// The per-block facts TypeScript reads through the addon (binding/model_facts.h): a DiT block's
// parameters (models/memory_model.h dit_block_params) against the checkpoint's own tensor list,
// its weight-shard buffers, and the Ulysses head groups (parallel/ulysses.h).
#include "checkpoint/arch.h"
#include "models/memory_model.h"
#include "parallel/ulysses.h"
#include "test.h"

using namespace wan;

TEST(dit_block_params_count_every_tensor_of_a_checkpoint_block) {
  for (const char* name : {"tiny", "1.3B", "14B"}) {
    const DitArch a = preset_arch(name).dit;
    int64_t total = 0, float32 = 0;
    for (const TensorSpec& s : dit_specs(a)) {
      if (s.name.rfind("blocks.0.", 0) != 0) continue;
      int64_t n = 1;
      for (int64_t d : s.shape) n *= d;
      total += n;
      // What models/dit.cpp places in float32 whatever the compute dtype.
      if (s.name == "blocks.0.norm3.weight" || s.name == "blocks.0.norm3.bias" || s.name == "blocks.0.modulation")
        float32 += n;
    }
    const BlockParams p = dit_block_params(a);
    EXPECT(p.total == total && p.float32 == float32);
  }
}

TEST(dit_shard_parts_split_each_dtype_buffer_over_the_ranks_rounding_up) {
  const DitArch a = preset_arch("1.3B").dit;
  const BlockParams p = dit_block_params(a);
  const std::vector<ShardPart> f32 = dit_shard_parts(a, 3, 4);
  EXPECT(f32.size() == 1 && f32[0].elements == (p.total + 2) / 3 && f32[0].bytes_per_element == 4);
  const std::vector<ShardPart> bf16 = dit_shard_parts(a, 8, 2);
  EXPECT(bf16.size() == 2 && bf16[0].elements == (p.total - p.float32 + 7) / 8 && bf16[0].bytes_per_element == 2);
  EXPECT(bf16[1].elements == (p.float32 + 7) / 8 && bf16[1].bytes_per_element == 4);
  EXPECT_ERROR(dit_shard_parts(a, 0, 4), "0 shards");
}

TEST(ulysses_head_groups_is_the_largest_divisor_of_the_members_heads_up_to_the_chunks) {
  EXPECT(ulysses_head_groups(6) == 2 && ulysses_head_groups(3) == 1 && ulysses_head_groups(1) == 1);
  EXPECT(ulysses_head_groups(12, 4) == 4 && ulysses_head_groups(10, 4) == 2 && ulysses_head_groups(7, 4) == 1);
}
