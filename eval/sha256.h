/* eval/sha256.h: moved to the base layer (kernels/base/sha256.h); this name is kept only so that
 * code written against it before the move still builds. New code includes the base header. */
#include "kernels/base/sha256.h"
