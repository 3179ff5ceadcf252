#include <gtest/gtest.h>
#include "dwconv/dwconv.h"
TEST(Smoke, Builds) { EXPECT_EQ(dwconv::dtype_size(dwconv::DType::f32), 4u); }
