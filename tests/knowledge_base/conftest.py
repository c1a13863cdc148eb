"""Small inline knowledge bases and a fast, model-free encoder for the matcher tests."""

from __future__ import annotations

import pytest

from knowledge_base.encoder import HashingEncoder
from knowledge_base.entry import KBEntry


def entry(entry_id: str, title: str, *examples: str, en: str = "", zh: str = "") -> KBEntry:
    answers = {k: v for k, v in (("en", en), ("zh-CN", zh)) if v}
    return KBEntry(id=entry_id, title=title, examples=examples, answers=answers)


SHOP_KB = (
    entry(
        "track",
        "where is my parcel",
        "track my parcel",
        "parcel tracking number",
        "where is my package now",
        "我的包裹到哪了",
        "查快递",
        en="Open My orders to track it.",
        zh="在我的订单里查看物流。",
    ),
    entry(
        "refund",
        "when do I get my refund",
        "refund not received",
        "how long does a refund take",
        "money back timing",
        "退款多久到账",
        "退款还没到",
        en="Refunds take 1-5 days.",
        zh="退款1至5个工作日到账。",
    ),
    entry(
        "invoice",
        "how do I get an invoice",
        "I need an invoice",
        "invoice for my company",
        "vat invoice request",
        "怎么开发票",
        "我要发票",
        en="Request it on the order page.",
        zh="在订单页申请发票。",
    ),
    entry(
        "password",
        "I forgot my password",
        "reset password",
        "cannot log in password",
        "password reset link",
        "忘记密码",
        "密码重置",
        en="Use Forgot password.",
        zh="点击忘记密码。",
    ),
    entry(
        "cancel",
        "cancel my order",
        "I want to cancel the order",
        "order cancellation",
        "stop my order please",
        "取消订单",
        "不想要了取消",
        en="Cancel before shipping.",
        zh="发货前可以取消。",
    ),
    entry(
        "hours",
        "customer service opening hours",
        "when are you open",
        "support opening times",
        "service hours today",
        "客服几点上班",
        "营业时间",
        en="9:00-22:00 daily.",
        zh="每天9点到22点。",
    ),
    entry(
        "coupon",
        "my coupon code does not work",
        "coupon not working",
        "discount code invalid",
        "apply a promo coupon",
        "优惠券用不了",
        "优惠码无效",
        en="Check the coupon's conditions.",
        zh="请检查使用条件。",
    ),
    entry(
        "address",
        "change the delivery address",
        "wrong address on my order",
        "update shipping address",
        "edit delivery address",
        "修改收货地址",
        "地址填错了",
        en="Edit it before shipping.",
        zh="发货前可修改。",
    ),
)


@pytest.fixture
def encoder() -> HashingEncoder:
    return HashingEncoder(dim=512)
