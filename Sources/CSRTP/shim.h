// libsrtp2 (Debian's libsrtp2-dev) for Swift.
#pragma once
#include <srtp2/srtp.h>
