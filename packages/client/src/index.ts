export const PACKAGE = "@parley/client";
