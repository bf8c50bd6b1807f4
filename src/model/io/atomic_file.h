// atomic_file.h: write a file so that a crash leaves either the old file or the whole new one,
// never a half-written file: write to <path>.tmp.<pid>, fsync, rename over <path>, fsync the dir.
#pragma once

#include <functional>
#include <string>

namespace tnl::io {

// `write` gets a FILE*-like sink: a function appending bytes. Throws tnl::Error naming the path.
void write_file_atomically(const std::string& path,
                           const std::function<void(const std::function<void(const void*, size_t)>&)>& write);
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace tnl::io
