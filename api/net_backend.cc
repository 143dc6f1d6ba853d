#include "twinloop/api/net_backend.h"

#include "absl/strings/str_cat.h"

namespace twinloop {

std::string SocketAddress::to_string() const {
  switch (family) {
    case Family::kInet:
      return absl::StrCat(host, ":", port);
    case Family::kInet6:
      return absl::StrCat("[", host, "]:", port);
    case Family::kUnix:
      return path.empty() ? std::string("<unnamed>") : path;
    case Family::kUnspecified:
      break;
  }
  return host.empty() ? std::string("<unspecified>") : absl::StrCat(host, ":", port);
}

}  // namespace twinloop
