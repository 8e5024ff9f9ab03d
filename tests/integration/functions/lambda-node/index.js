// SPDX-License-Identifier: Apache-2.0
// A Node.js handler for the official runtime interface client (aws-lambda-ric): an HTTP event
// (API Gateway payload 2.0) gets an HTTP answer, any other event is echoed with what the
// runtime told the handler, and {"fail": MESSAGE} throws.
exports.handler = async (event, context) => {
  if (event.fail) throw new Error(event.fail);
  if (event.requestContext && event.requestContext.http) {
    return {
      statusCode: 201,
      headers: { "x-handled-by": "aws-lambda-ric" },
      body: `${event.requestContext.http.method} ${event.rawPath} ${event.rawQueryString}`,
    };
  }
  return {
    event,
    requestId: context.awsRequestId,
    arn: context.invokedFunctionArn,
    remainingMs: context.getRemainingTimeInMillis(),
    functionName: context.functionName,
    handler: process.env._HANDLER,
    taskRoot: process.env.LAMBDA_TASK_ROOT,
    cwd: process.cwd(),
  };
};
