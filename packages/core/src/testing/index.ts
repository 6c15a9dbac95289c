/** Contract suites for implementations of core's interfaces (run them from your tests with tap). */
export { brokerContract, type BrokerContractSetup } from './broker-contract.js'
export { sessionStoreContract, type SessionStoreContractSetup } from './session-store-contract.js'
export { random, deepJson, hugeName, manyStreamCursor, manyLines, hostileJsonTexts } from './hostile.js'
export { assertUnavailable, unavailableBroker, unavailableStore, type AnsweredRequest } from './unavailable.js'
export { presenceStoreContract, type PresenceStoreContractSetup } from './presence-store-contract.js'
export { HTTP2_TEST_ENV, http2UnderTest, protocolUnderTest, testCertificate, testServerOptions, testFastify, useProtocolForFetch, type TestProtocol } from './protocol.js'
