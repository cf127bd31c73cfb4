#pragma once
// The demo chat page (app/static/index.html), compiled in by app/static/embed.py so a fresh
// install serves it at "/" with no files to find at run time.
#include <string_view>

namespace wsedge::app {
extern const std::string_view kDemoPage;  // HTML, UTF-8: serve as "text/html; charset=utf-8"
}
