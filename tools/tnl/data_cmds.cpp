// data_cmds.cpp: `tnl data prepare` (text -> train/val token shards) and `tnl data brown-text`.
#include "tnl/error.h"

namespace tnl::cli {

int data_prepare(int, char**) { throw Error("tnl data prepare: not built yet"); }
int data_brown_text(int, char**) { throw Error("tnl data brown-text: not built yet"); }

}  // namespace tnl::cli
