// tnl/tnl.h: the whole public API of the tnl library.
#pragma once

#include "tnl/attention.h"
#include "tnl/device.h"
#include "tnl/dtype.h"
#include "tnl/error.h"
