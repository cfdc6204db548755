export const PACKAGE = "@parley/wire";
