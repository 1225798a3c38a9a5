// `fp`: no quantization; the report keeps its float32 defaults.
#include "methods/fp.h"

namespace serq {

MethodReport FullPrecision::quantize(Model&, const QuantParams&, const Calibration&) const { return MethodReport{}; }

}  // namespace serq
