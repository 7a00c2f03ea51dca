export { createTestMemory, type TestMemory, type TestMemoryOptions } from "../../src/memory/test-memory.js";
