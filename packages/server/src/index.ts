export const PACKAGE = "@parley/server";
